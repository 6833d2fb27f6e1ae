use async_trait::async_trait;
use uuid::Uuid;

use crate::{DomainError, TenantPolicy, UserFacts};

/// The facts approval rules read from outside the stream: approvers' limits and status, and the
/// tenant's chain and SLA configuration. Implementations answer `LookupFailed` when they cannot
/// read, so nothing is decided on missing facts.
#[async_trait]
pub trait ApprovalServices: Send + Sync {
    /// `None` when the user does not exist in this tenant.
    async fn user(&self, tenant_id: Uuid, user_id: Uuid) -> Result<Option<UserFacts>, DomainError>;
    async fn policy(&self, tenant_id: Uuid) -> Result<TenantPolicy, DomainError>;
}
