use std::sync::Arc;

use async_trait::async_trait;
use uuid::Uuid;

use crate::account::AccountFacts;
use crate::{DomainError, Email};

/// What the user rules need to know beyond one user's own stream, always within one tenant.
#[async_trait]
pub trait UserServices: Send + Sync {
    /// Whether another user of the tenant has this e-mail address (compared lower-case).
    /// `except` is the user asking, whose own address does not count.
    async fn email_in_use(
        &self,
        tenant_id: Uuid,
        email: &Email,
        except: Option<Uuid>,
    ) -> Result<bool, DomainError>;

    /// How many active users of the tenant hold TenantAdmin.
    async fn active_tenant_admins(&self, tenant_id: Uuid) -> Result<u32, DomainError>;

    /// The account a Partner is linked to, if it exists in the tenant.
    async fn account(
        &self,
        tenant_id: Uuid,
        account_id: Uuid,
    ) -> Result<Option<AccountFacts>, DomainError>;
}

pub type Services = Arc<dyn UserServices>;
