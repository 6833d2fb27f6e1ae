//! What the account's rules need from outside its stream: the `Services` trait it is given, and
//! the facts one command needs, gathered through it before deciding.
use std::sync::Arc;

use async_trait::async_trait;
use uuid::Uuid;

use super::{Account, AccountCommand};
use crate::handle::gathered;
use crate::{Command, DomainError, TenantPolicy};

/// What the account rules need beyond one account's own stream.
#[async_trait]
pub trait AccountServices: Send + Sync {
    /// The tenant's policy: the currencies it trades in.
    async fn policy(&self, tenant_id: Uuid) -> Result<TenantPolicy, DomainError>;
}

pub type Services = Arc<dyn AccountServices>;

/// The outside facts one command needs, gathered before deciding so `decide` stays pure.
#[derive(Debug, Clone, Default)]
pub(crate) struct Facts {
    /// For `OpenAccount`: the tenant's currencies.
    policy: Option<TenantPolicy>,
}

impl Facts {
    pub(super) async fn gather(
        services: &dyn AccountServices,
        account: &Account,
        command: &Command<AccountCommand>,
    ) -> Result<Self, DomainError> {
        let opening = account.status().is_none()
            && matches!(command.body, AccountCommand::OpenAccount { .. });
        let policy = match opening {
            true => Some(services.policy(command.tenant_id).await?),
            false => None,
        };
        Ok(Self { policy })
    }

    pub(super) fn policy(&self) -> Result<&TenantPolicy, DomainError> {
        gathered(&self.policy, "tenant policy")
    }
}
