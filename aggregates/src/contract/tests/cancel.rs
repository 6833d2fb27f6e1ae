//! CancelContract: abandoning a contract that is not active yet.
use super::*;

fn cancel(reason: &str) -> C {
    C::CancelContract {
        reason: reason.into(),
    }
}

#[tokio::test]
async fn a_draft_or_negotiated_contract_is_cancelled_and_then_takes_no_command() {
    let negotiation = with(vec![drafted()], amended(2, "New terms"));
    for history in [vec![drafted()], negotiation] {
        expect_events(
            history.clone(),
            by(operator(), cancel(" abandoned ")),
            vec![cancelled()],
        )
        .await;
        expect_err(
            history.clone(),
            by(operator(), cancel(" ")),
            invalid("reason"),
        )
        .await;
        for actor in [as_role(Role::Viewer), partner_of(ACCOUNT)] {
            expect_err(history.clone(), by(actor, cancel("x")), forbidden).await;
        }
        let gone = with(history, cancelled());
        expect_err(
            gone.clone(),
            by(operator(), C::SubmitContract {}),
            rule(RuleCode::ContractNotSubmittable),
        )
        .await;
        expect_err(
            gone,
            by(operator(), cancel("again")),
            rule(RuleCode::ContractNotDraft),
        )
        .await;
    }
}

#[tokio::test]
async fn an_approved_contract_never_activated_is_cancelled_and_its_activation_then_refused() {
    for history in [approved_history(), signed_history()] {
        expect_events(
            history.clone(),
            by(operator(), cancel("abandoned")),
            vec![cancelled()],
        )
        .await;
        let gone = with(history, cancelled());
        expect_err(
            gone,
            at(system(), END, C::ActivateContract {}),
            rule(RuleCode::ContractNotApproved),
        )
        .await;
    }
}

#[tokio::test]
async fn a_submitted_or_active_contract_is_not_cancelled() {
    for history in [pending(), active()] {
        expect_err(
            history,
            by(operator(), cancel("x")),
            rule(RuleCode::ContractNotDraft),
        )
        .await;
    }
}
