//! CancelApproval.
use super::*;

#[tokio::test]
async fn the_requester_cancels_a_pending_request() {
    let expected = E::ApprovalCancelled {
        subject: subject(),
        reason: text("customer changed the order"),
    };
    expect_events(
        vec![large(), approved(1, MANAGER, Some(hours(24)))],
        by(user(REQUESTER), cancel("customer changed the order")),
        vec![expected.clone()],
    )
    .await;
    let approval = replay::<Approval>(vec![large(), expected]);
    assert_eq!(approval.status(), Some(ApprovalStatus::Cancelled));
}

#[tokio::test]
async fn no_user_but_the_requester_may_cancel() {
    for actor in [user(MANAGER), user(ADMIN)] {
        expect_err(vec![small()], by(actor, cancel("no")), forbidden).await;
    }
}

/// A withdrawn quote's open request is cancelled by the approval process.
#[tokio::test]
async fn the_approval_process_cancels_the_request_of_a_withdrawn_subject() {
    let withdrawn = E::ApprovalCancelled {
        subject: subject(),
        reason: text("the quote was withdrawn"),
    };
    let process = Actor::system("process.approvals");
    expect_events(
        vec![small()],
        by(process.clone(), cancel("the quote was withdrawn")),
        vec![withdrawn.clone()],
    )
    .await;
    expect_err(
        vec![small(), withdrawn],
        by(process, cancel("the quote was withdrawn")),
        rule(RuleCode::ApprovalClosed),
    )
    .await;
}

#[tokio::test]
async fn cancel_needs_a_reason_and_an_open_request() {
    expect_err(
        vec![small()],
        by(user(REQUESTER), cancel("")),
        invalid("reason"),
    )
    .await;
    expect_err(
        vec![small(), approved(1, MANAGER, None), granted()],
        by(user(REQUESTER), cancel("too late")),
        rule(RuleCode::ApprovalClosed),
    )
    .await;
}
