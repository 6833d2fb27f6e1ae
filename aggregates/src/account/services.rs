use std::sync::Arc;

use async_trait::async_trait;
use uuid::Uuid;

use crate::{DomainError, TenantPolicy};

/// What the account rules need beyond one account's own stream.
#[async_trait]
pub trait AccountServices: Send + Sync {
    /// The tenant's policy: the currencies it trades in.
    async fn policy(&self, tenant_id: Uuid) -> Result<TenantPolicy, DomainError>;
}

pub type Services = Arc<dyn AccountServices>;
