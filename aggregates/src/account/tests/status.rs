//! Suspension, reinstatement and closing.
use super::*;

#[tokio::test]
async fn only_active_accounts_can_be_suspended() {
    expect_events(
        vec![opened(), activated()],
        by(
            admin(),
            C::SuspendAccount {
                reason: "unpaid invoices".into(),
            },
        ),
        vec![E::AccountSuspended {
            reason: text("unpaid invoices"),
        }],
    )
    .await;
    expect_err(
        vec![opened()],
        by(admin(), C::SuspendAccount { reason: "x".into() }),
        rule(RuleCode::AccountNotActive),
    )
    .await;
    expect_err(
        vec![opened(), activated()],
        by(admin(), C::SuspendAccount { reason: "".into() }),
        |e| matches!(e, DomainError::InvalidField { ref field, .. } if field == "reason"),
    )
    .await;
}

#[tokio::test]
async fn only_suspended_accounts_can_be_reinstated() {
    let suspended = E::AccountSuspended { reason: text("x") };
    expect_events(
        vec![opened(), activated(), suspended],
        by(admin(), C::ReinstateAccount {}),
        vec![E::AccountReinstated {}],
    )
    .await;
    expect_err(
        vec![opened(), activated()],
        by(admin(), C::ReinstateAccount {}),
        rule(RuleCode::AccountNotSuspended),
    )
    .await;
}

#[tokio::test]
async fn close_is_refused_while_a_contract_is_active() {
    let linked = E::ContractActivatedOnAccount {
        contract_id: contract(),
    };
    expect_err(
        vec![opened(), activated(), linked.clone()],
        by(
            admin(),
            C::CloseAccount {
                reason: "churned".into(),
            },
        ),
        rule(RuleCode::AccountHasActiveContracts),
    )
    .await;
    let ended = E::ContractEndedOnAccount {
        contract_id: contract(),
    };
    expect_events(
        vec![opened(), activated(), linked, ended],
        by(
            admin(),
            C::CloseAccount {
                reason: "churned".into(),
            },
        ),
        vec![E::AccountClosed {
            reason: text("churned"),
        }],
    )
    .await;
}

#[tokio::test]
async fn a_closed_account_accepts_no_more_changes() {
    let closed = E::AccountClosed { reason: text("x") };
    expect_err(
        vec![opened(), closed.clone()],
        by(
            admin(),
            C::ChangeTier {
                tier: Tier::Standard,
            },
        ),
        rule(RuleCode::AccountClosed),
    )
    .await;
    expect_err(
        vec![opened(), closed],
        by(
            admin(),
            C::CloseAccount {
                reason: "again".into(),
            },
        ),
        rule(RuleCode::AccountClosed),
    )
    .await;
}
