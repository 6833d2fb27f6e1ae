//! What the approval's rules need from outside its stream: the `Services` trait it is given, and
//! the facts one command needs, gathered through it before deciding.
use std::sync::Arc;

use async_trait::async_trait;
use uuid::Uuid;

use super::state::{ApprovalStatus, Request};
use super::ApprovalCommand;
use crate::{Actor, Command, DomainError, TenantPolicy, UserFacts};

/// The facts approval rules read from outside the stream: approvers' limits and status, and the
/// tenant's chain and SLA configuration. Implementations answer `LookupFailed` when they cannot
/// read, so nothing is decided on missing facts.
#[async_trait]
pub trait ApprovalServices: Send + Sync {
    /// `None` when the user does not exist in this tenant.
    async fn user(&self, tenant_id: Uuid, user_id: Uuid) -> Result<Option<UserFacts>, DomainError>;
    async fn policy(&self, tenant_id: Uuid) -> Result<TenantPolicy, DomainError>;
}

/// The approval aggregate's cqrs-es `Services`.
pub type Services = Arc<dyn ApprovalServices>;

/// The outside facts one command needs, gathered before deciding so `decide` stays pure.
/// Only what the command can use is looked up.
#[derive(Debug, Clone, Default)]
pub(crate) struct Facts {
    /// For opening a request, approving a level that has a successor, and escalating.
    pub(super) policy: Option<TenantPolicy>,
    /// For approving or rejecting: the acting user as their stream says now, or `None` when
    /// the tenant has no such user.
    pub(super) approver: Option<UserFacts>,
    /// For delegating: the user the level is handed to, or `None` when the tenant has none.
    pub(super) delegate: Option<UserFacts>,
}

impl Facts {
    pub(super) async fn gather(
        services: &dyn ApprovalServices,
        request: Option<&Request>,
        command: &Command<ApprovalCommand>,
    ) -> Result<Self, DomainError> {
        use ApprovalCommand as C;
        let tenant_id = command.tenant_id;
        let mut facts = Self::default();
        let Some(request) = request else {
            if let C::RequestApproval { .. } = command.body {
                facts.policy = Some(services.policy(tenant_id).await?);
            }
            return Ok(facts);
        };
        // A request that is no longer pending refuses everything but a repeated request.
        if request.status != ApprovalStatus::Pending {
            return Ok(facts);
        }
        let actor = match &command.actor {
            Actor::User { user_id, .. } => Some(*user_id),
            Actor::System { .. } => None,
        };
        match &command.body {
            C::ApproveLevel { .. } | C::RejectApproval { .. } => {
                if let Some(user_id) = actor {
                    facts.approver = services.user(tenant_id, user_id).await?;
                }
                // The next level's SLA starts when this one is approved.
                let has_next = request.current + 1 < request.levels.len();
                if matches!(command.body, C::ApproveLevel { .. }) && has_next {
                    facts.policy = Some(services.policy(tenant_id).await?);
                }
            }
            C::DelegateLevel { to_user_id } => {
                facts.delegate = services.user(tenant_id, *to_user_id).await?;
            }
            C::EscalateLevel {} => facts.policy = Some(services.policy(tenant_id).await?),
            C::RequestApproval { .. } | C::CancelApproval { .. } => {}
        }
        Ok(facts)
    }
}
