//! What only the system sends: activation by the first accepted quote, contract links.
use super::*;

#[tokio::test]
async fn first_accepted_quote_activates_a_prospect_once() {
    let quote_id = Uuid::from_u128(5);
    let system = Actor::system("quote-acceptance");
    expect_events(
        vec![opened()],
        by(system.clone(), C::ActivateAccount { quote_id }),
        vec![E::AccountActivated { quote_id }],
    )
    .await;
    expect_events(
        vec![opened(), activated()],
        by(system, C::ActivateAccount { quote_id }),
        vec![],
    )
    .await;
}

#[tokio::test]
async fn users_cannot_issue_system_commands() {
    for command in [
        C::ActivateAccount {
            quote_id: Uuid::nil(),
        },
        C::RecordContractActivated {
            contract_id: contract(),
        },
        C::RecordContractEnded {
            contract_id: contract(),
        },
    ] {
        expect_err(vec![opened()], by(admin(), command), |e| {
            matches!(e, DomainError::Forbidden(_))
        })
        .await;
    }
}

#[tokio::test]
async fn contract_links_are_idempotent() {
    let system = Actor::system("contract-lifecycle");
    let linked = E::ContractActivatedOnAccount {
        contract_id: contract(),
    };
    expect_events(
        vec![opened(), activated()],
        by(
            system.clone(),
            C::RecordContractActivated {
                contract_id: contract(),
            },
        ),
        vec![linked.clone()],
    )
    .await;
    expect_events(
        vec![opened(), activated(), linked],
        by(
            system.clone(),
            C::RecordContractActivated {
                contract_id: contract(),
            },
        ),
        vec![],
    )
    .await;
    expect_events(
        vec![opened(), activated()],
        by(
            system,
            C::RecordContractEnded {
                contract_id: contract(),
            },
        ),
        vec![],
    )
    .await;
}
