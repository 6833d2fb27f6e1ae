//! MarkQuoteApproved, MarkQuoteRejected (from the approval process) and ReviseQuote.
use super::*;
use crate::quote::QuoteStatus;

fn mark_approved(approval_id: Uuid) -> C {
    C::MarkQuoteApproved { approval_id }
}

fn mark_rejected(approval_id: Uuid) -> C {
    C::MarkQuoteRejected {
        approval_id,
        reason: "price too low".into(),
    }
}

#[tokio::test]
async fn the_approval_process_approves_a_pending_quote() {
    expect_events(
        pending(),
        by(system(), mark_approved(approval())),
        vec![E::QuoteApproved {
            approval_id: Some(approval()),
        }],
    )
    .await;
    assert_eq!(
        replay::<Quote>(approved()).status(),
        Some(QuoteStatus::Approved)
    );
}

#[tokio::test]
async fn the_approval_process_rejects_a_pending_quote() {
    expect_events(
        pending(),
        by(system(), mark_rejected(approval())),
        vec![E::QuoteRejected {
            approval_id: approval(),
            reason: text("price too low"),
        }],
    )
    .await;
    assert_eq!(
        replay::<Quote>(rejected()).status(),
        Some(QuoteStatus::Rejected)
    );
}

#[tokio::test]
async fn no_user_marks_a_quote_approved_or_rejected() {
    for actor in [as_role(Role::TenantAdmin), as_role(Role::Manager)] {
        for command in [mark_approved(approval()), mark_rejected(approval())] {
            expect_err(pending(), by(actor.clone(), command), forbidden).await;
        }
    }
}

#[tokio::test]
async fn only_a_pending_quote_is_approved_or_rejected() {
    let other = Uuid::from_u128(501);
    let not_pending = [draft_with_lines(), approved(), rejected(), sent()];
    for given in not_pending {
        for command in [mark_approved(other), mark_rejected(other)] {
            expect_err(
                given.clone(),
                by(system(), command),
                rule(RuleCode::QuoteNotPending),
            )
            .await;
        }
    }
}

#[tokio::test]
async fn a_redelivered_outcome_changes_nothing() {
    expect_events(approved(), by(system(), mark_approved(approval())), vec![]).await;
    expect_events(sent(), by(system(), mark_approved(approval())), vec![]).await;
    let accepted = then(sent(), accepted_event());
    expect_events(accepted, by(system(), mark_approved(approval())), vec![]).await;
    expect_events(rejected(), by(system(), mark_rejected(approval())), vec![]).await;
    let revised = then(rejected(), E::QuoteRevised {});
    expect_events(revised, by(system(), mark_rejected(approval())), vec![]).await;
}

#[tokio::test]
async fn an_approval_cannot_change_its_outcome() {
    expect_err(
        approved(),
        by(system(), mark_rejected(approval())),
        rule(RuleCode::ApprovalAlreadySettled),
    )
    .await;
    expect_err(
        rejected(),
        by(system(), mark_approved(approval())),
        rule(RuleCode::ApprovalAlreadySettled),
    )
    .await;
}

#[tokio::test]
async fn a_rejection_needs_a_reason() {
    let command = C::MarkQuoteRejected {
        approval_id: approval(),
        reason: "".into(),
    };
    expect_err(pending(), by(system(), command), invalid("reason")).await;
}

#[tokio::test]
async fn revise_takes_a_rejected_quote_back_to_draft() {
    expect_events(
        rejected(),
        by(operator(), C::ReviseQuote {}),
        vec![E::QuoteRevised {}],
    )
    .await;
    let revised = then(rejected(), E::QuoteRevised {});
    assert_eq!(
        replay::<Quote>(revised.clone()).status(),
        Some(QuoteStatus::Draft)
    );
    // Drafting again unfreezes the lines.
    expect_events(
        revised,
        by(
            operator(),
            C::RemoveLineItem {
                line_id: line_id(1),
            },
        ),
        vec![E::LineItemRemoved {
            line_id: line_id(1),
        }],
    )
    .await;
}

#[tokio::test]
async fn only_a_rejected_quote_is_revised_and_only_by_staff() {
    for given in [draft_with_lines(), pending(), approved(), sent()] {
        expect_err(
            given,
            by(operator(), C::ReviseQuote {}),
            rule(RuleCode::QuoteNotRejected),
        )
        .await;
    }
    for actor in [as_role(Role::Viewer), partner_of(account())] {
        expect_err(rejected(), by(actor, C::ReviseQuote {}), forbidden).await;
    }
}

fn accepted_event() -> E {
    E::QuoteAccepted {
        account_id: account(),
        title: text("Q1 hardware refresh"),
        lines: two_lines(),
        totals: totals_of(&two_lines(), Decimal::ZERO),
    }
}
