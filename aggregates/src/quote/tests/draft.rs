//! DraftQuote, and commands on a quote that does not exist yet.
use super::*;
use crate::quote::QuoteStatus;

fn draft_command() -> C {
    C::DraftQuote {
        account_id: account(),
        title: "  Q1 hardware refresh ".into(),
        valid_until: valid_until(),
    }
}

#[tokio::test]
async fn draft_takes_currency_and_tier_from_the_account() {
    for role in [Role::Operator, Role::Manager, Role::TenantAdmin] {
        expect_events(vec![], by(as_role(role), draft_command()), vec![drafted()]).await;
    }
    let quote = replay::<Quote>(vec![drafted()]);
    assert_eq!(quote.status(), Some(QuoteStatus::Draft));
    assert_eq!(quote.account_id(), Some(account()));
}

#[tokio::test]
async fn draft_snapshots_the_tier_the_account_has_now() {
    let enterprise = fake(AccountStatus::Prospect, Tier::Enterprise);
    let E::QuoteDrafted {
        account_id,
        title,
        currency,
        valid_until,
        ..
    } = drafted()
    else {
        unreachable!("drafted builds QuoteDrafted")
    };
    let expected = E::QuoteDrafted {
        account_id,
        title,
        currency,
        tier: Tier::Enterprise,
        valid_until,
    };
    expect_events_with(
        enterprise,
        vec![],
        by(operator(), draft_command()),
        vec![expected],
    )
    .await;
}

#[tokio::test]
async fn viewers_and_partners_cannot_draft() {
    expect_err(
        vec![],
        by(as_role(Role::Viewer), draft_command()),
        forbidden,
    )
    .await;
    expect_err(
        vec![],
        by(partner_of(account()), draft_command()),
        forbidden,
    )
    .await;
}

#[tokio::test]
async fn draft_needs_an_account_of_the_callers_tenant() {
    let unknown = C::DraftQuote {
        account_id: other_account(),
        title: "x".into(),
        valid_until: valid_until(),
    };
    let not_found = |e: &DomainError| *e == DomainError::NotFound("account");
    expect_err(vec![], by(operator(), unknown), not_found).await;
    let elsewhere = Command::new(Uuid::from_u128(43), operator(), now(), draft_command());
    expect_err(vec![], elsewhere, not_found).await;
}

#[tokio::test]
async fn draft_is_refused_for_suspended_and_closed_accounts() {
    for (status, code) in [
        (AccountStatus::Suspended, RuleCode::AccountSuspended),
        (AccountStatus::Closed, RuleCode::AccountClosed),
    ] {
        expect_err_with(
            fake(status, Tier::Gold),
            vec![],
            by(operator(), draft_command()),
            rule(code),
        )
        .await;
    }
}

#[tokio::test]
async fn draft_needs_valid_until_in_the_future() {
    for valid_until in [now(), now() - Duration::seconds(1)] {
        let command = C::DraftQuote {
            account_id: account(),
            title: "x".into(),
            valid_until,
        };
        expect_err(
            vec![],
            by(operator(), command),
            rule(RuleCode::ValidUntilPassed),
        )
        .await;
    }
}

#[tokio::test]
async fn draft_needs_a_bounded_title() {
    for title in [" ".to_owned(), "x".repeat(201)] {
        let command = C::DraftQuote {
            account_id: account(),
            title,
            valid_until: valid_until(),
        };
        expect_err(vec![], by(operator(), command), invalid("title")).await;
    }
}

#[tokio::test]
async fn draft_twice_is_a_rule_violation() {
    expect_err(
        vec![drafted()],
        by(operator(), draft_command()),
        rule(RuleCode::QuoteExists),
    )
    .await;
}

#[tokio::test]
async fn a_failed_lookup_decides_nothing() {
    let mut down = fake(AccountStatus::Active, Tier::Gold);
    down.unreachable = true;
    expect_err_with(down, vec![], by(operator(), draft_command()), |e| {
        matches!(e, DomainError::LookupFailed(_))
    })
    .await;
}

#[tokio::test]
async fn commands_on_an_undrafted_quote_are_not_found() {
    for command in [
        C::SubmitQuote {},
        C::RemoveLineItem {
            line_id: line_id(1),
        },
        C::AcceptQuote {},
    ] {
        expect_err(vec![], by(operator(), command), |e| {
            *e == DomainError::NotFound("quote")
        })
        .await;
    }
    expect_err(vec![], by(system(), C::ExpireQuote {}), |e| {
        *e == DomainError::NotFound("quote")
    })
    .await;
}
