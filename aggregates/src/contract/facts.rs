//! What the contract's rules need from outside its stream: the `Services` trait it is given, and
//! the facts one command needs, gathered through it before deciding.
use std::sync::Arc;

use async_trait::async_trait;
use uuid::Uuid;

use super::{Contract, ContractCommand};
use crate::account::AccountFacts;
use crate::handle::gathered;
use crate::{Command, DomainError, TenantPolicy};

/// What the contract rules need to know beyond one contract's own stream.
#[async_trait]
pub trait ContractServices: Send + Sync {
    /// The account, if it exists in the tenant.
    async fn account(
        &self,
        tenant_id: Uuid,
        account_id: Uuid,
    ) -> Result<Option<AccountFacts>, DomainError>;

    /// The tenant's policy: the currencies it trades in.
    async fn policy(&self, tenant_id: Uuid) -> Result<TenantPolicy, DomainError>;
}

pub type Services = Arc<dyn ContractServices>;

/// The outside facts one command needs, gathered before deciding so `decide` stays pure.
/// Only what the command can use is looked up.
#[derive(Debug, Clone, Default)]
pub(crate) struct Facts {
    /// For drafting: the contract's account, or `None` when the tenant has no such account.
    pub(super) account: Option<AccountFacts>,
    /// For drafting by a user (the tenant's currencies) and for submitting (its approval
    /// chains).
    pub(super) policy: Option<TenantPolicy>,
}

impl Facts {
    pub(super) async fn gather(
        services: &dyn ContractServices,
        contract: &Contract,
        command: &Command<ContractCommand>,
    ) -> Result<Self, DomainError> {
        use ContractCommand as C;
        let tenant_id = command.tenant_id;
        let mut facts = Self::default();
        match (&command.body, contract.status()) {
            (C::DraftContract { account_id, .. }, None) => {
                facts.policy = Some(services.policy(tenant_id).await?);
                facts.account = services.account(tenant_id, *account_id).await?;
            }
            (C::DraftContractFromQuote { account_id, .. }, None) => {
                facts.account = services.account(tenant_id, *account_id).await?;
            }
            (C::SubmitContract {}, Some(_)) => {
                facts.policy = Some(services.policy(tenant_id).await?);
            }
            _ => {}
        }
        Ok(facts)
    }

    pub(super) fn policy(&self) -> Result<&TenantPolicy, DomainError> {
        gathered(&self.policy, "tenant policy")
    }
}
