use std::sync::Arc;

use async_trait::async_trait;
use uuid::Uuid;

use crate::account::AccountFacts;
use crate::{DomainError, TenantPolicy};

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
