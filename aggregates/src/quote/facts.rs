//! What the quote's rules need from outside its stream: the `Services` trait it is given, and
//! the facts one command needs, gathered through it before deciding.
use std::sync::Arc;

use async_trait::async_trait;
use uuid::Uuid;

use super::{Quote, QuoteCommand};
use crate::account::AccountFacts;
use crate::handle::gathered;
use crate::{Command, DomainError, TenantPolicy};

/// Facts from outside the quote that its rules need. Every lookup is scoped to the command's
/// tenant, so an account of another tenant is simply not found.
#[async_trait]
pub trait QuoteServices: Send + Sync {
    /// The account's facts, or `None` when the tenant has no such account.
    async fn account(
        &self,
        tenant_id: Uuid,
        account_id: Uuid,
    ) -> Result<Option<AccountFacts>, DomainError>;

    async fn policy(&self, tenant_id: Uuid) -> Result<TenantPolicy, DomainError>;
}

/// The quote aggregate's cqrs-es `Services`.
pub type Services = Arc<dyn QuoteServices>;

/// The outside facts one command needs, gathered before deciding so `decide` stays
/// pure. Only what the command uses is looked up.
#[derive(Debug, Clone, Default)]
pub(crate) struct Facts {
    /// For `DraftQuote`: the account, or `None` when it does not exist in the tenant.
    pub(super) account: Option<AccountFacts>,
    /// For commands that price lines or submit.
    pub(super) policy: Option<TenantPolicy>,
}

impl Facts {
    pub(super) async fn gather(
        services: &dyn QuoteServices,
        quote: &Quote,
        command: &Command<QuoteCommand>,
    ) -> Result<Self, DomainError> {
        use QuoteCommand as C;
        let tenant_id = command.tenant_id;
        let mut facts = Self::default();
        match &command.body {
            C::DraftQuote { account_id, .. } if quote.status().is_none() => {
                facts.account = services.account(tenant_id, *account_id).await?;
            }
            C::AddLineItem { .. } | C::SubmitQuote {} => {
                facts.policy = Some(services.policy(tenant_id).await?);
            }
            // The volume discount only moves with the quantity.
            C::ChangeLineItem {
                quantity: Some(_), ..
            } => {
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
