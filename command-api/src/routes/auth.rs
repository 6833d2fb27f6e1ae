//! Sign-in routes: thin translations to [`auth::Identity`], where the rules live.
use actix_web::{web, HttpRequest, HttpResponse};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use auth::AuthError;

use crate::body::JsonBody;
use crate::request::client_address;
use crate::{ApiError, Caller, CommandApi};

/// What sign-in refuses in a tenant slug or e-mail besides length: a control character
/// (Unicode's `Cc`, as `char::is_control`).
const NO_CONTROL_CHARACTERS: &str = r"^[^\u0000-\u001F\u007F-\u009F]*$";

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// The tenant's slug.
    #[schemars(
        length(max = auth::MAX_SLUG_CHARS),
        extend("pattern" = NO_CONTROL_CHARACTERS)
    )]
    tenant: String,
    #[schemars(
        length(max = auth::MAX_EMAIL_CHARS),
        extend("pattern" = NO_CONTROL_CHARACTERS)
    )]
    email: String,
    #[schemars(length(max = auth::MAX_PASSWORD_CHARS))]
    password: String,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    /// The refresh token of the last pair; it is retired by this call.
    #[schemars(length(max = 128))]
    refresh_token: String,
}

#[derive(Serialize, JsonSchema)]
pub(crate) struct TokenPair {
    access_token: String,
    /// Single use: refreshing returns its successor, and using it twice ends the session.
    refresh_token: String,
    #[schemars(extend("const" = "Bearer"))]
    token_type: &'static str,
    /// Seconds until the access token expires.
    expires_in: i64,
}

impl From<auth::Tokens> for TokenPair {
    fn from(tokens: auth::Tokens) -> Self {
        Self {
            access_token: tokens.access_token,
            refresh_token: tokens.refresh_token,
            token_type: "Bearer",
            expires_in: tokens.expires_in,
        }
    }
}

#[tracing::instrument(skip(api, req, body), fields(tenant = %body.tenant))]
pub async fn login(
    api: web::Data<CommandApi>,
    req: HttpRequest,
    JsonBody(body): JsonBody<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    let client = client_address(&req, &api.trusted_proxies)
        .ok_or_else(|| ApiError::Internal("a sign-in without a peer address".into()))?;
    let signed_in = api
        .identity
        .sign_in(client, &body.tenant, &body.email, &body.password)
        .await;
    metrics::counter!("b2b_sign_ins_total", "outcome" => sign_in_outcome(&signed_in)).increment(1);
    Ok(HttpResponse::Ok().json(TokenPair::from(signed_in?)))
}

/// The `outcome` label of `b2b_sign_ins_total`: a few fixed values.
fn sign_in_outcome<T>(signed_in: &Result<T, AuthError>) -> &'static str {
    match signed_in {
        Ok(_) => "ok",
        Err(AuthError::InvalidCredentials) => "invalid_credentials",
        Err(AuthError::SignInLocked { .. }) => "locked",
        Err(AuthError::SignInsFromAddress { .. } | AuthError::TooManyRequests { .. }) => {
            "throttled"
        }
        Err(AuthError::SignInsBusy { .. }) => "busy",
        Err(AuthError::InvalidInput { .. }) => "invalid_input",
        Err(_) => "failed",
    }
}

#[tracing::instrument(skip_all)]
pub async fn refresh(
    api: web::Data<CommandApi>,
    JsonBody(body): JsonBody<RefreshRequest>,
) -> Result<HttpResponse, ApiError> {
    let tokens = api.identity.refresh(&body.refresh_token).await?;
    Ok(HttpResponse::Ok().json(TokenPair::from(tokens)))
}

#[tracing::instrument(skip_all, fields(tenant_id = %claims.tid, user_id = %claims.sub))]
pub async fn logout(
    api: web::Data<CommandApi>,
    Caller(claims): Caller,
) -> Result<HttpResponse, ApiError> {
    api.identity.sign_out(&claims).await?;
    api.settle_caches().await;
    Ok(HttpResponse::NoContent().finish())
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
