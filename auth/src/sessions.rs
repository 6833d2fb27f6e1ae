//! Sessions and their refresh tokens. A session lives until it expires or is revoked (sign-out,
//! refresh-token reuse, or the user's deactivation, which the 0007 trigger applies).
//! Sessions, refresh tokens and credentials have row-level security: every statement here runs
//! in a transaction acting for the session's tenant (`event_store::db::begin_for_tenant`).
use std::time::Duration;

use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use crate::tokens::new_refresh_token;
use crate::{AuthError, Claims};

pub(crate) async fn open(
    conn: &mut PgConnection,
    (tenant_id, user_id): (Uuid, Uuid),
    lifetime: Duration,
) -> Result<Uuid, AuthError> {
    let session_id = Uuid::new_v4();
    sqlx::query(
        "insert into sessions (id, tenant_id, user_id, expires_at) \
         values ($1, $2, $3, now() + $4 * interval '1 second')",
    )
    .bind(session_id)
    .bind(tenant_id)
    .bind(user_id)
    .bind(lifetime.as_secs_f64())
    .execute(conn)
    .await?;
    Ok(session_id)
}

/// A new refresh token for the session; only its hash is stored.
pub(crate) async fn issue_refresh_token(
    conn: &mut PgConnection,
    (tenant_id, session_id): (Uuid, Uuid),
) -> Result<String, AuthError> {
    let (token, hash) = new_refresh_token();
    sqlx::query(
        "insert into refresh_tokens (token_hash, tenant_id, session_id) values ($1, $2, $3)",
    )
    .bind(hash)
    .bind(tenant_id)
    .bind(session_id)
    .execute(conn)
    .await?;
    Ok(token)
}

/// Marks the token used; `false` if it already was (the caller then treats it as reuse).
pub(crate) async fn retire_refresh_token(
    conn: &mut PgConnection,
    token_hash: &[u8],
) -> Result<bool, AuthError> {
    let retired = sqlx::query(
        "update refresh_tokens set used_at = now() where token_hash = $1 and used_at is null",
    )
    .bind(token_hash)
    .execute(conn)
    .await?;
    Ok(retired.rows_affected() == 1)
}

/// The session a refresh token belongs to. The token and the session rows are both locked, so
/// two refreshes with one token take turns and the second reads the token as used (Postgres
/// re-reads locked rows once the first commits).
#[derive(sqlx::FromRow)]
pub(crate) struct RefreshingSession {
    pub session_id: Uuid,
    pub user_id: Uuid,
    pub tenant_id: Uuid,
    pub already_used: bool,
    pub live: bool,
}

/// Looks the token up before its tenant is known (`refresh_token_session`, migration 0021: the
/// one row whose hash the caller presents), then makes the transaction act for that tenant.
pub(crate) async fn lock_by_refresh_token(
    conn: &mut PgConnection,
    token_hash: &[u8],
) -> Result<Option<RefreshingSession>, AuthError> {
    let found: Option<RefreshingSession> = sqlx::query_as(
        "select session_id, user_id, tenant_id, already_used, live \
           from refresh_token_session($1)",
    )
    .bind(token_hash)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(session) = &found {
        sqlx::query("select set_config('app.tenant_id', $1::text, true)")
            .bind(session.tenant_id)
            .execute(conn)
            .await?;
    }
    Ok(found)
}

pub(crate) async fn revoke<'c>(
    conn: impl PgExecutor<'c>,
    session_id: Uuid,
) -> Result<(), AuthError> {
    sqlx::query("update sessions set revoked_at = now() where id = $1 and revoked_at is null")
        .bind(session_id)
        .execute(conn)
        .await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct StoredUser {
    tenant_id: Uuid,
    slug: String,
    email: String,
    roles: Vec<String>,
    account_id: Option<Uuid>,
}

/// What an access token for this session says now, if the user is still active.
pub(crate) async fn claims(
    conn: &mut PgConnection,
    user_id: Uuid,
    session_id: Uuid,
) -> Result<Option<Claims>, AuthError> {
    let found: Option<StoredUser> = sqlx::query_as(
        "select c.tenant_id, t.slug, c.email, c.roles, c.account_id \
         from user_credentials c join tenants t on t.id = c.tenant_id \
         where c.user_id = $1 and c.active",
    )
    .bind(user_id)
    .fetch_optional(conn)
    .await?;
    found
        .map(|user| {
            Ok(Claims {
                sub: user_id,
                sid: session_id,
                tid: user.tenant_id,
                tenant: user.slug,
                email: user.email,
                roles: parse_roles(&user.roles)?,
                account_id: user.account_id,
                exp: 0,
                iat: 0,
                api_key: false,
            })
        })
        .transpose()
}

pub(crate) fn parse_roles(stored: &[String]) -> Result<Vec<aggregates::Role>, AuthError> {
    stored
        .iter()
        .map(|role| role.parse())
        .collect::<Result<_, _>>()
        .map_err(|e: aggregates::DomainError| AuthError::StoredRole(e.to_string()))
}
