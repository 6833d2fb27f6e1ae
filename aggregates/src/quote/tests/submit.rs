//! SubmitQuote: totals, whether approval is needed, and the requester.
use super::*;
use crate::quote::QuoteStatus;
use crate::Money;

fn money(amount: &str) -> Money {
    Money::new(dec(amount), eur())
}

fn submit() -> Command<C> {
    by(operator(), C::SubmitQuote {})
}

fn with_discount(percent: &str) -> Vec<E> {
    then(
        draft_with_lines(),
        E::QuoteDiscountSet {
            percent: dec(percent),
            reason: text("x"),
        },
    )
}

/// The submission of `two_lines()`, below the threshold, with `subtotal` as given.
fn small_submission(subtotal: &str) -> E {
    E::QuoteSubmitted {
        submission: 1,
        requester: user(),
        totals: QuoteTotals {
            subtotal: money(subtotal),
            line_discounts: money("7.75"),
            quote_discount: money("0.00"),
            total: money("347.25"),
        },
        discount_percent: Decimal::ZERO,
        needs_approval: false,
        approval_chain: vec![],
    }
}

#[tokio::test]
async fn a_small_quote_is_approved_on_submission() {
    let submitted = small_submission("355.00");
    let E::QuoteSubmitted { totals, .. } = &submitted else {
        unreachable!()
    };
    assert_eq!(&totals_of(&two_lines(), Decimal::ZERO), totals);
    let expected = vec![submitted.clone(), E::QuoteApproved { approval_id: None }];
    expect_events(draft_with_lines(), submit(), expected.clone()).await;
    let mut history = draft_with_lines();
    history.extend(expected);
    assert_eq!(
        replay::<Quote>(history).status(),
        Some(QuoteStatus::Approved)
    );
}

#[tokio::test]
async fn a_total_above_the_threshold_needs_the_chain_for_its_amount() {
    let big = line(1, "100", "200.00", "10");
    let given = vec![drafted(), added(big.clone())];
    let totals = QuoteTotals {
        subtotal: money("20000.00"),
        line_discounts: money("2000.00"),
        quote_discount: money("0.00"),
        total: money("18000.00"),
    };
    assert_eq!(totals_of(&[big], Decimal::ZERO), totals);
    let expected = E::QuoteSubmitted {
        submission: 1,
        requester: user(),
        totals,
        discount_percent: Decimal::ZERO,
        needs_approval: true,
        approval_chain: vec![Role::Manager, Role::TenantAdmin],
    };
    expect_events(given.clone(), submit(), vec![expected.clone()]).await;
    let quote = replay::<Quote>(then(given, expected));
    assert_eq!(quote.status(), Some(QuoteStatus::PendingApproval));
}

#[tokio::test]
async fn a_discount_above_ten_percent_needs_approval_whatever_the_total() {
    let totals = totals_of(&two_lines(), dec("10.01"));
    // 347.25 × 0.8999 = 312.490275 → 312.49.
    assert_eq!(totals.total, money("312.49"));
    assert_eq!(totals.quote_discount, money("34.76"));
    expect_events(
        with_discount("10.01"),
        submit(),
        vec![E::QuoteSubmitted {
            submission: 1,
            requester: user(),
            totals,
            discount_percent: dec("10.01"),
            needs_approval: true,
            approval_chain: vec![Role::Manager],
        }],
    )
    .await;
}

#[tokio::test]
async fn a_ten_percent_discount_needs_no_approval() {
    let totals = totals_of(&two_lines(), Decimal::TEN);
    // 347.25 × 0.9 = 312.525 → half-even 312.52.
    assert_eq!(totals.total, money("312.52"));
    expect_events(
        with_discount("10"),
        submit(),
        vec![
            E::QuoteSubmitted {
                submission: 1,
                requester: user(),
                totals,
                discount_percent: Decimal::TEN,
                needs_approval: false,
                approval_chain: vec![],
            },
            E::QuoteApproved { approval_id: None },
        ],
    )
    .await;
}

#[tokio::test]
async fn submit_needs_at_least_one_line() {
    expect_err(vec![drafted()], submit(), rule(RuleCode::QuoteHasNoLines)).await;
    let emptied = vec![
        drafted(),
        added(line(1, "1", "1.00", "0")),
        E::LineItemRemoved {
            line_id: line_id(1),
        },
    ];
    expect_err(emptied, submit(), rule(RuleCode::QuoteHasNoLines)).await;
}

#[tokio::test]
async fn only_staff_users_submit() {
    for actor in [as_role(Role::Viewer), partner_of(account()), system()] {
        expect_err(draft_with_lines(), by(actor, C::SubmitQuote {}), forbidden).await;
    }
    expect_events(
        draft_with_lines(),
        by(as_role(Role::TenantAdmin), C::SubmitQuote {}),
        vec![submitted(false), E::QuoteApproved { approval_id: None }],
    )
    .await;
}

#[tokio::test]
async fn only_a_draft_is_submitted() {
    for given in [pending(), approved(), rejected(), sent()] {
        expect_err(given, submit(), rule(RuleCode::QuoteNotDraft)).await;
    }
}

#[tokio::test]
async fn submit_only_while_the_quote_is_valid() {
    expect_events(
        draft_with_lines(),
        at(valid_until(), operator(), C::SubmitQuote {}),
        vec![submitted(false), E::QuoteApproved { approval_id: None }],
    )
    .await;
    expect_err(
        draft_with_lines(),
        at(
            valid_until() + Duration::seconds(1),
            operator(),
            C::SubmitQuote {},
        ),
        rule(RuleCode::QuoteValidityPassed),
    )
    .await;
}

#[tokio::test]
async fn a_revised_quote_is_submitted_again_with_the_next_number() {
    let mut given = rejected();
    given.push(E::QuoteRevised {});
    let E::QuoteSubmitted { totals, .. } = submitted(false) else {
        unreachable!("submitted builds QuoteSubmitted")
    };
    expect_events(
        given,
        submit(),
        vec![
            E::QuoteSubmitted {
                submission: 2,
                requester: user(),
                totals,
                discount_percent: Decimal::ZERO,
                needs_approval: false,
                approval_chain: vec![],
            },
            E::QuoteApproved { approval_id: None },
        ],
    )
    .await;
}

#[tokio::test]
async fn a_policy_without_a_chain_for_the_amount_refuses_submission() {
    let mut services = fake(AccountStatus::Active, Tier::Gold);
    for rules in services.policy.currencies.values_mut() {
        rules.approval_bands.clear();
    }
    expect_err_with(
        services,
        with_discount("50"),
        submit(),
        rule(RuleCode::NoApprovalChain),
    )
    .await;
}

#[tokio::test]
async fn an_unreachable_policy_decides_nothing() {
    let mut services = fake(AccountStatus::Active, Tier::Gold);
    services.unreachable = true;
    expect_err_with(services, draft_with_lines(), submit(), |e| {
        matches!(e, DomainError::LookupFailed(_))
    })
    .await;
}

/// Submissions stored while the subtotal was net (version 1.0) read as the gross one now; the
/// current ones are version 1.1, which the step leads to.
#[test]
fn totals_of_version_1_0_events_are_read_with_the_gross_subtotal() {
    use cqrs_es::DomainEvent;
    let step = upcaster::<E>("QuoteSubmitted", "1.0");
    assert_eq!(step.to, small_submission("355.00").event_version());
    // Stored net: 355.00 gross less 7.75 of line discounts.
    let mut stored = serde_json::to_value(small_submission("347.25")).unwrap();
    (step.rewrite)(&mut stored["QuoteSubmitted"]).unwrap();
    let read: E = serde_json::from_value(stored).unwrap();
    assert_eq!(read, small_submission("355.00"));
}
