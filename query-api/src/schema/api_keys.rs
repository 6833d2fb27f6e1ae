//! `apiKeys`: the tenant's API keys with their last use, for TenantAdmins. Read from the
//! `api_keys` table that `auth` keeps (row-level security shows the request's tenant only);
//! never a secret or its hash.
use async_graphql::{ComplexObject, ErrorExtensions, SimpleObject};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::stored::role;
use super::Role;
use crate::{QueryError, TenantTx};

/// The most keys one answer lists, newest first.
pub const MAX_KEYS_LISTED: i64 = 500;

/// An API key of the tenant, as a machine client's credential: what it may do and when it was
/// last used. The secret was shown once, when it was created.
#[derive(Debug, Clone, SimpleObject, sqlx::FromRow)]
#[graphql(complex)]
pub struct ApiKey {
    pub id: Uuid,
    pub name: String,
    #[graphql(skip)]
    #[sqlx(rename = "roles")]
    pub role_names: Vec<String>,
    /// The account a Partner key acts for.
    pub account_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    /// The TenantAdmin who created it.
    pub created_by: Uuid,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub revoked_by: Option<Uuid>,
    /// When a request last used it; stamped at most once a minute per server, so up to a
    /// minute old. Null if it was never used.
    pub last_used_at: Option<DateTime<Utc>>,
}

#[ComplexObject]
impl ApiKey {
    async fn roles(&self) -> async_graphql::Result<Vec<Role>> {
        self.role_names
            .iter()
            .map(|name| role(name, "api_keys.roles"))
            .collect::<Result<_, _>>()
            .map_err(|e| e.extend())
    }

    /// Neither revoked nor expired.
    async fn active(&self) -> bool {
        self.revoked_at.is_none() && self.expires_at > Utc::now()
    }
}

pub async fn list(
    tx: &TenantTx,
    tenant_id: Uuid,
    include_revoked: bool,
) -> Result<Vec<ApiKey>, QueryError> {
    let sql = format!(
        "select {} from api_keys where tenant_id = $1 and ($2 or revoked_at is null) \
          order by created_at desc, id limit $3",
        auth::api_keys::API_KEY_COLUMNS
    );
    let mut conn = tx.conn().await?;
    Ok(sqlx::query_as(&sql)
        .bind(tenant_id)
        .bind(include_revoked)
        .bind(MAX_KEYS_LISTED)
        .fetch_all(&mut *conn)
        .await?)
}
