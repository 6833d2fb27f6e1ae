//! What the user's rules need from outside its stream: the `Services` trait it is given, and
//! the facts one command needs, gathered through it before deciding.
use std::sync::Arc;

use async_trait::async_trait;
use uuid::Uuid;

use super::state::Profile;
use super::UserCommand;
use crate::account::AccountFacts;
use crate::{Command, DomainError, Email, Role};

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

/// The outside facts one command needs, gathered before deciding so `decide` stays pure.
/// Only what the command can use is looked up.
#[derive(Debug, Clone, Default)]
pub(crate) struct Facts {
    /// The account a Partner is to be linked to, or `None` when the tenant has no such account.
    pub(super) account: Option<AccountFacts>,
    /// Whether another user of the tenant has the address the command gives.
    pub(super) email_in_use: Option<bool>,
    /// For taking TenantAdmin from, or deactivating, an active TenantAdmin.
    pub(super) active_tenant_admins: Option<u32>,
}

impl Facts {
    pub(super) async fn gather(
        services: &dyn UserServices,
        profile: Option<&Profile>,
        command: &Command<UserCommand>,
    ) -> Result<Self, DomainError> {
        use UserCommand as C;
        let tenant_id = command.tenant_id;
        let mut facts = Self::default();
        // A forgotten user refuses every command but a repeated ForgetUser, which needs nothing.
        if profile.is_some_and(|p| p.forgotten) {
            return Ok(facts);
        }
        let partner_account = match (&command.body, profile) {
            (
                C::RegisterUser {
                    roles, account_id, ..
                },
                None,
            ) => account_id.filter(|_| roles.contains(&Role::Partner)),
            (C::ChangeRoles { roles, account_id }, Some(_)) => {
                account_id.filter(|_| roles.contains(&Role::Partner))
            }
            (C::LinkPartnerAccount { account_id }, Some(_)) => Some(*account_id),
            _ => None,
        };
        if let Some(account_id) = partner_account {
            facts.account = services.account(tenant_id, account_id).await?;
        }
        // An address that does not parse is refused before anyone looks it up.
        let new_email = match (&command.body, profile) {
            (C::RegisterUser { email, .. }, None) => Some((email, None)),
            (C::ChangeEmail { email }, Some(profile)) => Some((email, Some(profile))),
            _ => None,
        };
        if let Some((email, profile)) = new_email {
            if let Ok(email) = Email::parse("email", email) {
                let except = profile.map(|p| p.user_id);
                if profile.is_none_or(|p| p.email != email) {
                    facts.email_in_use =
                        Some(services.email_in_use(tenant_id, &email, except).await?);
                }
            }
        }
        // Forgetting an active user deactivates them.
        let may_lose_an_admin = matches!(
            command.body,
            C::ChangeRoles { .. } | C::DeactivateUser { .. } | C::ForgetUser {}
        );
        if may_lose_an_admin && profile.is_some_and(Profile::is_active_tenant_admin) {
            facts.active_tenant_admins = Some(services.active_tenant_admins(tenant_id).await?);
        }
        Ok(facts)
    }
}
