//! MarkContractApproved and MarkContractRejected: the approval's outcome.
use super::*;

fn mark_approved(approval_id: Uuid) -> C {
    C::MarkContractApproved { approval_id }
}

fn mark_rejected(approval_id: Uuid) -> C {
    C::MarkContractRejected {
        approval_id,
        reason: "too cheap".into(),
    }
}

#[tokio::test]
async fn the_approval_outcome_moves_a_pending_contract() {
    expect_events(
        pending(),
        by(system(), mark_approved(APPROVAL)),
        vec![approved()],
    )
    .await;
    let rejected = E::ContractRejected {
        approval_id: APPROVAL,
        version: 1,
        reason: text("too cheap"),
    };
    expect_events(
        pending(),
        by(system(), mark_rejected(APPROVAL)),
        vec![rejected.clone()],
    )
    .await;
    // Rejected goes back to negotiation and may be submitted again.
    expect_events(
        with(pending(), rejected),
        by(operator(), C::SubmitContract {}),
        vec![submitted(1)],
    )
    .await;
}

#[tokio::test]
async fn users_cannot_decide_approval_outcomes() {
    for command in [mark_approved(APPROVAL), mark_rejected(APPROVAL)] {
        expect_err(
            pending(),
            by(as_role(Role::TenantAdmin), command),
            forbidden,
        )
        .await;
    }
}

#[tokio::test]
async fn a_repeated_outcome_changes_nothing() {
    expect_events(
        approved_history(),
        by(system(), mark_approved(APPROVAL)),
        vec![],
    )
    .await;
    // A late copy of an earlier rejection must not reject the new submission.
    let rejected = E::ContractRejected {
        approval_id: APPROVAL,
        version: 1,
        reason: text("too cheap"),
    };
    expect_events(
        vec![drafted(), submitted(1), rejected, submitted(1)],
        by(system(), mark_rejected(APPROVAL)),
        vec![],
    )
    .await;
}

#[tokio::test]
async fn an_outcome_needs_a_pending_submission() {
    for command in [mark_approved(LATER_APPROVAL), mark_rejected(LATER_APPROVAL)] {
        expect_err(
            approved_history(),
            by(system(), command),
            rule(RuleCode::ContractNotPendingApproval),
        )
        .await;
    }
    expect_err(
        vec![drafted()],
        by(system(), mark_approved(APPROVAL)),
        rule(RuleCode::ContractNotPendingApproval),
    )
    .await;
}

#[tokio::test]
async fn a_rejection_has_a_reason() {
    expect_err(
        pending(),
        by(
            system(),
            C::MarkContractRejected {
                approval_id: APPROVAL,
                reason: "".into(),
            },
        ),
        invalid("reason"),
    )
    .await;
}
