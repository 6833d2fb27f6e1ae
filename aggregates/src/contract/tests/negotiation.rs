//! AmendContract and SubmitContract.
use super::*;

#[tokio::test]
async fn each_amendment_is_a_new_version_and_starts_negotiation() {
    expect_events(
        vec![drafted()],
        by(operator(), amend(Some("Net 45."), Some("13000.00"))),
        vec![E::ContractAmended {
            version: 2,
            terms: Some(text("Net 45.")),
            value: Some(money("13000.00")),
        }],
    )
    .await;
    expect_events(
        vec![drafted(), amended(2, "Net 45.")],
        by(operator(), amend(Some("Net 60."), None)),
        vec![amended(3, "Net 60.")],
    )
    .await;
    let mut contract = Contract::default();
    for event in [drafted(), amended(2, "Net 45.")] {
        cqrs_es::Aggregate::apply(&mut contract, event);
    }
    assert_eq!(contract.status(), Some(ContractStatus::Negotiation));
    assert_eq!(contract.version(), 2);
}

#[tokio::test]
async fn an_amendment_carries_only_what_changed() {
    expect_events(
        vec![drafted()],
        by(operator(), amend(Some("Net 30."), Some("12500"))),
        vec![E::ContractAmended {
            version: 2,
            terms: None,
            value: Some(money("12500")),
        }],
    )
    .await;
    expect_events(
        vec![drafted()],
        by(operator(), amend(Some(" Net 30. "), Some("12000"))),
        vec![],
    )
    .await;
}

#[tokio::test]
async fn an_amendment_needs_a_field_and_valid_values() {
    let cases: [(&'static str, C); 3] = [
        ("body", amend(None, None)),
        ("terms", amend(Some("  "), None)),
        ("value", amend(None, Some("-5"))),
    ];
    for (field, command) in cases {
        expect_err(vec![drafted()], by(operator(), command), invalid(field)).await;
    }
}

#[tokio::test]
async fn amendments_stop_at_submission() {
    for history in [
        pending(),
        approved_history(),
        active(),
        with(active(), expired()),
        with(vec![drafted()], terminated()),
    ] {
        expect_err(
            history,
            by(operator(), amend(Some("Net 90."), None)),
            rule(RuleCode::ContractNotAmendable),
        )
        .await;
    }
}

#[tokio::test]
async fn a_rejected_contract_is_amended_into_its_next_version() {
    let rejected = E::ContractRejected {
        approval_id: APPROVAL,
        version: 1,
        reason: text("too cheap"),
    };
    expect_events(
        vec![drafted(), submitted(1), rejected],
        by(operator(), amend(None, Some("15000"))),
        vec![E::ContractAmended {
            version: 2,
            terms: None,
            value: Some(money("15000")),
        }],
    )
    .await;
}

#[tokio::test]
async fn viewers_and_partners_never_amend_submit_or_terminate() {
    for actor in [as_role(Role::Viewer), partner_of(ACCOUNT)] {
        for command in [
            amend(Some("x"), None),
            C::SubmitContract {},
            C::TerminateContract {
                reason: "x".into(),
                effective_date: date(START),
            },
        ] {
            expect_err(vec![drafted()], by(actor.clone(), command), forbidden).await;
        }
    }
}

// SubmitContract

#[tokio::test]
async fn submit_sends_the_current_version_and_value_for_approval() {
    expect_events(
        vec![drafted()],
        by(operator(), C::SubmitContract {}),
        vec![submitted(1)],
    )
    .await;
    expect_events(
        vec![drafted(), amended(2, "Net 45.")],
        by(as_role(Role::Manager), C::SubmitContract {}),
        vec![submitted(2)],
    )
    .await;
}

#[tokio::test]
async fn submit_only_a_draft_or_a_contract_in_negotiation() {
    for history in [pending(), approved_history(), active()] {
        expect_err(
            history,
            by(operator(), C::SubmitContract {}),
            rule(RuleCode::ContractNotSubmittable),
        )
        .await;
    }
}
