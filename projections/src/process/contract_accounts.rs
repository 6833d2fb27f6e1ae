//! Contract activated (or renewed back to active) or ended → the account's list of active
//! contracts follows, so the account can refuse to close while contracts run.
use aggregates::account::{Account, AccountCommand};
use aggregates::contract::{Contract, ContractEvent};
use async_trait::async_trait;
use cqrs_es::Aggregate;
use event_store::StoredEvent;
use sqlx::PgConnection;

use super::issue::{Issuer, Order};
use super::Reactor;
use super::{aggregate_uuid, decode, ACCOUNT_REFUSALS};
use crate::ProjectionError;

/// Contract activated (or reactivated by a renewal) → `RecordContractActivated` on its account;
/// expired or terminated → `RecordContractEnded`. The account needs the list to refuse closing
/// while contracts run.
pub struct ContractAccounts {
    issuer: Issuer,
}

impl ContractAccounts {
    pub fn new(issuer: Issuer) -> Self {
        Self { issuer }
    }
}

#[async_trait]
impl Reactor for ContractAccounts {
    const NAME: &'static str = "process.contract-accounts";
    const SUBSCRIBES: &'static [(&'static str, &'static str)] = &[
        (Contract::TYPE, "ContractActivated"),
        (Contract::TYPE, "ContractRenewed"),
        (Contract::TYPE, "ContractExpired"),
        (Contract::TYPE, "ContractTerminated"),
    ];

    async fn react(
        &self,
        _: &mut PgConnection,
        event: &StoredEvent,
    ) -> Result<(), ProjectionError> {
        let contract_id = aggregate_uuid(event)?;
        let (account_id, name, body) = match decode(event)? {
            ContractEvent::ContractActivated { account_id, .. }
            | ContractEvent::ContractRenewed {
                account_id,
                reactivated: true,
                ..
            } => (
                account_id,
                "RecordContractActivated",
                AccountCommand::RecordContractActivated { contract_id },
            ),
            ContractEvent::ContractExpired { account_id, .. }
            | ContractEvent::ContractTerminated { account_id, .. } => (
                account_id,
                "RecordContractEnded",
                AccountCommand::RecordContractEnded { contract_id },
            ),
            _ => return Ok(()),
        };
        let order = Order {
            aggregate_id: account_id,
            name,
            body,
            settled: ACCOUNT_REFUSALS,
        };
        self.issuer.issue::<Account>(event, order).await
    }
}
