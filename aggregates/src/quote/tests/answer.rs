//! SendQuote, AcceptQuote, DeclineQuote, WithdrawQuote and ExpireQuote.
use super::*;
use crate::quote::QuoteStatus;

fn accepted() -> E {
    E::QuoteAccepted {
        account_id: account(),
        title: text("Q1 hardware refresh"),
        lines: two_lines(),
        totals: totals_of(&two_lines(), Decimal::ZERO),
    }
}

fn decline() -> C {
    C::DeclineQuote {
        reason: "went with a competitor".into(),
    }
}

fn declined() -> E {
    E::QuoteDeclined {
        reason: text("went with a competitor"),
    }
}

fn withdraw() -> C {
    C::WithdrawQuote {
        reason: "customer asked for a new scope".into(),
    }
}

fn withdrawn() -> E {
    E::QuoteWithdrawn {
        reason: text("customer asked for a new scope"),
    }
}

fn after_validity() -> DateTime<Utc> {
    valid_until() + Duration::seconds(1)
}

/// Every final quote.
fn final_quotes() -> Vec<Vec<E>> {
    vec![
        then(sent(), accepted()),
        then(sent(), declined()),
        then(sent(), E::QuoteExpired {}),
        then(draft_with_lines(), withdrawn()),
    ]
}

#[tokio::test]
async fn staff_send_an_approved_quote() {
    for role in [Role::Operator, Role::Manager, Role::TenantAdmin] {
        expect_events(
            approved(),
            by(as_role(role), C::SendQuote {}),
            vec![E::QuoteSent {}],
        )
        .await;
    }
    assert_eq!(replay::<Quote>(sent()).status(), Some(QuoteStatus::Sent));
}

#[tokio::test]
async fn only_an_approved_quote_is_sent() {
    for given in [draft_with_lines(), pending(), rejected(), sent()] {
        expect_err(
            given,
            by(operator(), C::SendQuote {}),
            rule(RuleCode::QuoteNotApproved),
        )
        .await;
    }
    for actor in [as_role(Role::Viewer), partner_of(account())] {
        expect_err(approved(), by(actor, C::SendQuote {}), forbidden).await;
    }
}

#[tokio::test]
async fn a_quote_past_its_validity_is_not_sent() {
    expect_err(
        approved(),
        at(after_validity(), operator(), C::SendQuote {}),
        rule(RuleCode::QuoteValidityPassed),
    )
    .await;
}

#[tokio::test]
async fn the_accounts_partner_accepts_with_the_terms_for_the_contract() {
    expect_events(
        sent(),
        by(partner_of(account()), C::AcceptQuote {}),
        vec![accepted()],
    )
    .await;
    assert_eq!(
        replay::<Quote>(then(sent(), accepted())).status(),
        Some(QuoteStatus::Accepted)
    );
}

#[tokio::test]
async fn staff_may_answer_on_the_accounts_behalf() {
    for role in [Role::Operator, Role::Manager, Role::TenantAdmin] {
        expect_events(
            sent(),
            by(as_role(role), C::AcceptQuote {}),
            vec![accepted()],
        )
        .await;
        expect_events(sent(), by(as_role(role), decline()), vec![declined()]).await;
    }
}

#[tokio::test]
async fn partners_of_other_accounts_and_viewers_cannot_answer() {
    let unlinked = Actor::User {
        user_id: Uuid::from_u128(9),
        roles: vec![Role::Partner],
        account_id: None,
    };
    for actor in [partner_of(other_account()), unlinked, as_role(Role::Viewer)] {
        for command in [C::AcceptQuote {}, decline()] {
            expect_err(sent(), by(actor.clone(), command), forbidden).await;
        }
    }
}

#[tokio::test]
async fn only_a_sent_quote_is_answered() {
    for given in [draft_with_lines(), pending(), approved(), rejected()] {
        for command in [C::AcceptQuote {}, decline()] {
            expect_err(
                given.clone(),
                by(partner_of(account()), command),
                rule(RuleCode::QuoteNotSent),
            )
            .await;
        }
    }
}

#[tokio::test]
async fn answers_count_only_while_the_quote_is_valid() {
    expect_events(
        sent(),
        at(valid_until(), partner_of(account()), C::AcceptQuote {}),
        vec![accepted()],
    )
    .await;
    expect_events(
        sent(),
        at(valid_until(), partner_of(account()), decline()),
        vec![declined()],
    )
    .await;
    for command in [C::AcceptQuote {}, decline()] {
        expect_err(
            sent(),
            at(after_validity(), partner_of(account()), command),
            rule(RuleCode::QuoteValidityPassed),
        )
        .await;
    }
}

#[tokio::test]
async fn partners_decline_with_a_reason() {
    expect_events(
        sent(),
        by(partner_of(account()), decline()),
        vec![declined()],
    )
    .await;
    let no_reason = C::DeclineQuote { reason: "".into() };
    expect_err(
        sent(),
        by(partner_of(account()), no_reason),
        invalid("reason"),
    )
    .await;
}

#[tokio::test]
async fn staff_withdraw_a_quote_any_time_before_it_is_answered() {
    for given in [
        draft_with_lines(),
        pending(),
        approved(),
        rejected(),
        sent(),
    ] {
        expect_events(given, by(operator(), withdraw()), vec![withdrawn()]).await;
    }
    // Past its validity too: withdrawing does not wait for the expiry timer.
    expect_events(
        sent(),
        at(after_validity(), operator(), withdraw()),
        vec![withdrawn()],
    )
    .await;
    assert_eq!(
        replay::<Quote>(then(sent(), withdrawn())).status(),
        Some(QuoteStatus::Withdrawn)
    );
}

#[tokio::test]
async fn withdraw_needs_staff_and_a_reason() {
    for actor in [as_role(Role::Viewer), partner_of(account())] {
        expect_err(sent(), by(actor, withdraw()), forbidden).await;
    }
    let no_reason = C::WithdrawQuote { reason: " ".into() };
    expect_err(sent(), by(operator(), no_reason), invalid("reason")).await;
}

#[tokio::test]
async fn the_timer_expires_a_quote_once_its_validity_has_passed() {
    for given in [
        draft_with_lines(),
        pending(),
        approved(),
        rejected(),
        sent(),
    ] {
        expect_events(
            given,
            at(after_validity(), system(), C::ExpireQuote {}),
            vec![E::QuoteExpired {}],
        )
        .await;
    }
    assert_eq!(
        replay::<Quote>(then(sent(), E::QuoteExpired {})).status(),
        Some(QuoteStatus::Expired)
    );
}

#[tokio::test]
async fn a_quote_does_not_expire_while_valid() {
    for when in [now(), valid_until()] {
        expect_err(
            sent(),
            at(when, system(), C::ExpireQuote {}),
            rule(RuleCode::QuoteStillValid),
        )
        .await;
    }
}

#[tokio::test]
async fn only_the_system_expires_quotes() {
    expect_err(
        sent(),
        at(
            after_validity(),
            as_role(Role::TenantAdmin),
            C::ExpireQuote {},
        ),
        forbidden,
    )
    .await;
}

#[tokio::test]
async fn a_repeated_expiry_changes_nothing() {
    expect_events(
        then(sent(), E::QuoteExpired {}),
        at(after_validity(), system(), C::ExpireQuote {}),
        vec![],
    )
    .await;
}

#[tokio::test]
async fn a_final_quote_accepts_no_more_changes() {
    let commands = [
        C::AddLineItem {
            line_id: line_id(9),
            sku: "s".into(),
            description: "d".into(),
            quantity: Decimal::ONE,
            unit: Unit::Piece,
            unit_price: Decimal::ONE,
        },
        C::SubmitQuote {},
        C::SendQuote {},
        C::AcceptQuote {},
        decline(),
        withdraw(),
        C::ReviseQuote {},
    ];
    for given in final_quotes() {
        for command in commands.clone() {
            expect_err(
                given.clone(),
                by(operator(), command),
                rule(RuleCode::QuoteClosed),
            )
            .await;
        }
    }
    let late = at(after_validity(), system(), C::ExpireQuote {});
    for given in [then(sent(), accepted()), then(sent(), declined())] {
        expect_err(given, late.clone(), rule(RuleCode::QuoteClosed)).await;
    }
    let other_approval = C::MarkQuoteApproved {
        approval_id: Uuid::from_u128(502),
    };
    expect_err(
        then(sent(), accepted()),
        by(system(), other_approval),
        rule(RuleCode::QuoteClosed),
    )
    .await;
}
