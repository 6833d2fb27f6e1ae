//! `me`: answered from the verified token alone, so it costs no query.
use async_graphql::{Enum, SimpleObject};
use auth::Claims;
use uuid::Uuid;

/// A role inside the tenant, mirrored from `aggregates::Role` so the two cannot drift apart
/// (the derive fails to compile when a variant is added on one side only). Stored in the read
/// models by its variant name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, strum::EnumString, strum::IntoStaticStr)]
#[graphql(remote = "aggregates::Role")]
pub enum Role {
    TenantAdmin,
    Manager,
    Operator,
    Viewer,
    Partner,
}

#[derive(Debug, Clone, SimpleObject)]
pub struct Me {
    pub user_id: Uuid,
    pub tenant_id: Uuid,
    /// The tenant's slug.
    pub tenant: String,
    pub email: String,
    pub roles: Vec<Role>,
    /// The account a Partner user is linked to.
    pub account_id: Option<Uuid>,
}

impl From<&Claims> for Me {
    fn from(claims: &Claims) -> Self {
        Self {
            user_id: claims.sub,
            tenant_id: claims.tid,
            tenant: claims.tenant.clone(),
            email: claims.email.clone(),
            roles: claims.roles.iter().copied().map(Role::from).collect(),
            account_id: claims.account_id,
        }
    }
}
