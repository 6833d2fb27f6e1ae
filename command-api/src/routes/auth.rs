use actix_web::{web, HttpResponse};
use chrono::{Duration, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{ApiError, Caller, CommandApi};

/// How long a refresh token stays usable.
const REFRESH_LIFETIME_DAYS: i64 = 30;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// The tenant's slug.
    tenant: String,
    email: String,
    password: String,
}

#[derive(Serialize, JsonSchema)]
pub(crate) struct TokenPair {
    access_token: String,
    refresh_token: String,
    #[schemars(extend("const" = "Bearer"))]
    token_type: &'static str,
    /// Seconds until the access token expires.
    expires_in: i64,
}

#[derive(sqlx::FromRow)]
struct Credentials {
    user_id: Uuid,
    tenant_id: Uuid,
    email: String,
    password_hash: String,
    roles: Vec<String>,
    account_id: Option<Uuid>,
}

/// Unknown tenant, unknown e-mail and wrong password all give the same 401, after the same
/// argon2 work.
#[tracing::instrument(skip(api, body), fields(tenant = %body.tenant))]
pub async fn login(
    api: web::Data<CommandApi>,
    body: web::Json<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    let found: Option<Credentials> = sqlx::query_as(
        "select c.user_id, c.tenant_id, c.email, c.password_hash, c.roles, c.account_id \
         from user_credentials c join tenants t on t.id = c.tenant_id \
         where t.slug = $1 and c.email = lower($2) and c.active",
    )
    .bind(&body.tenant)
    .bind(body.email.trim())
    .fetch_optional(&api.pool)
    .await?;
    let stored_hash = found
        .as_ref()
        .map_or(auth::dummy_password_hash(), |c| c.password_hash.as_str());
    let password_ok = auth::verify_password(&body.password, stored_hash);
    let Some(credentials) = found.filter(|_| password_ok) else {
        return Err(ApiError::Unauthorized);
    };
    let pair = start_session(&api, credentials, &body.tenant).await?;
    Ok(HttpResponse::Ok().json(pair))
}

async fn start_session(
    api: &CommandApi,
    credentials: Credentials,
    tenant_slug: &str,
) -> Result<TokenPair, ApiError> {
    let roles = credentials
        .roles
        .iter()
        .map(|r| r.parse())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ApiError::Internal(format!("stored role is invalid: {e}")))?;
    let (refresh_token, refresh_hash) = auth::new_refresh_token();
    sqlx::query(
        "insert into sessions (id, user_id, refresh_token_hash, expires_at) values ($1, $2, $3, $4)",
    )
    .bind(Uuid::new_v4())
    .bind(credentials.user_id)
    .bind(refresh_hash)
    .bind(Utc::now() + Duration::days(REFRESH_LIFETIME_DAYS))
    .execute(&api.pool)
    .await?;
    let access_token = api.keys.issue(auth::Claims {
        sub: credentials.user_id,
        tid: credentials.tenant_id,
        tenant: tenant_slug.to_owned(),
        email: credentials.email,
        roles,
        account_id: credentials.account_id,
        exp: 0,
        iat: 0,
    });
    Ok(TokenPair {
        access_token,
        refresh_token,
        token_type: "Bearer",
        expires_in: api.keys.lifetime_seconds(),
    })
}

#[derive(Serialize, JsonSchema)]
pub(crate) struct Me {
    user_id: Uuid,
    tenant_id: Uuid,
    tenant: String,
    email: String,
    roles: Vec<aggregates::Role>,
    /// The account a Partner acts for.
    account_id: Option<Uuid>,
}

pub async fn me(Caller(claims): Caller) -> HttpResponse {
    HttpResponse::Ok().json(Me {
        user_id: claims.sub,
        tenant_id: claims.tid,
        tenant: claims.tenant,
        email: claims.email,
        roles: claims.roles,
        account_id: claims.account_id,
    })
}
