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

/// A correct password whose sign-in needs a second factor.
#[derive(Serialize, JsonSchema)]
pub(crate) struct MfaChallenge {
    #[schemars(extend("const" = true))]
    mfa_required: bool,
    /// Completes this sign-in within 5 minutes: with a code at `POST /api/v1/auth/login/totp`,
    /// or, when `enrollment_required`, through `/auth/totp/enroll` and `/auth/totp/confirm`.
    mfa_token: String,
    /// The tenant requires two-factor sign-in for one of the user's roles and the user has not
    /// enrolled yet.
    enrollment_required: bool,
}

/// Sign-in's answer: a session, or the second factor it still needs.
#[derive(Serialize, JsonSchema)]
#[serde(untagged)]
pub(crate) enum LoginAnswer {
    Session(TokenPair),
    SecondFactor(MfaChallenge),
}

#[tracing::instrument(skip(api, req, body), fields(tenant = %body.tenant))]
pub async fn login(
    api: web::Data<CommandApi>,
    req: HttpRequest,
    JsonBody(body): JsonBody<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    let client = client(&api, &req)?;
    let signed_in = api
        .identity
        .sign_in(client, &body.tenant, &body.email, &body.password)
        .await;
    metrics::counter!("b2b_sign_ins_total", "outcome" => sign_in_outcome(&signed_in)).increment(1);
    let answer = match signed_in? {
        auth::SignIn::Session(tokens) => LoginAnswer::Session(tokens.into()),
        auth::SignIn::SecondFactor { mfa_token, enroll } => {
            LoginAnswer::SecondFactor(MfaChallenge {
                mfa_required: true,
                mfa_token,
                enrollment_required: enroll,
            })
        }
    };
    Ok(no_store().json(answer))
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

fn client(api: &CommandApi, req: &HttpRequest) -> Result<std::net::IpAddr, ApiError> {
    client_address(req, &api.trusted_proxies)
        .ok_or_else(|| ApiError::Internal("a sign-in without a peer address".into()))
}

/// Answers carrying secrets are not for caches.
fn no_store() -> actix_web::HttpResponseBuilder {
    let mut response = HttpResponse::Ok();
    response.insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"));
    response
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TotpLoginRequest {
    /// From the sign-in's answer.
    #[schemars(length(max = 128))]
    mfa_token: String,
    /// The authenticator's current 6-digit code, or one of the recovery codes.
    #[schemars(length(max = 32))]
    code: String,
}

/// `POST /auth/login/totp`: the second step of a sign-in.
#[tracing::instrument(skip_all)]
pub async fn login_totp(
    api: web::Data<CommandApi>,
    req: HttpRequest,
    JsonBody(body): JsonBody<TotpLoginRequest>,
) -> Result<HttpResponse, ApiError> {
    let client = client(&api, &req)?;
    let tokens = api
        .identity
        .complete_sign_in(client, &body.mfa_token, &body.code)
        .await?;
    Ok(no_store().json(TokenPair::from(tokens)))
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TotpEnrollRequest {
    /// When the sign-in's answer required enrolling: its `mfa_token`. Otherwise leave it out
    /// and send the session's access token.
    #[schemars(length(max = 128))]
    mfa_token: Option<String>,
}

/// A new TOTP secret, shown this once.
#[derive(Serialize, JsonSchema)]
pub(crate) struct TotpEnrolment {
    /// `otpauth://totp/...`: for an authenticator app (or a QR code of it).
    otpauth_uri: String,
    /// The same secret alone, base32, for typing in.
    secret: String,
}

/// `POST /auth/totp/enroll`.
#[tracing::instrument(skip_all)]
pub async fn totp_enroll(
    api: web::Data<CommandApi>,
    caller: Result<Caller, ApiError>,
    JsonBody(body): JsonBody<TotpEnrollRequest>,
) -> Result<HttpResponse, ApiError> {
    let caller = enrollee_caller(body.mfa_token.as_deref(), caller)?;
    let enrollee = enrollee(body.mfa_token.as_deref(), caller.as_ref())?;
    let enrolment = api.identity.enroll_totp(enrollee).await?;
    Ok(no_store().json(TotpEnrolment {
        otpauth_uri: enrolment.otpauth_uri,
        secret: enrolment.secret,
    }))
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TotpConfirmRequest {
    /// The authenticator's current 6-digit code for the new secret.
    #[schemars(length(max = 32))]
    code: String,
    /// As in the enrolment: the sign-in's `mfa_token` when it required enrolling.
    #[schemars(length(max = 128))]
    mfa_token: Option<String>,
}

/// An enrolment confirmed.
#[derive(Serialize, JsonSchema)]
pub(crate) struct TotpConfirmed {
    /// Single-use codes that stand in for the authenticator; shown this once.
    recovery_codes: Vec<String>,
    /// The session, when the confirmation completed a sign-in (an `mfa_token` was sent).
    #[serde(skip_serializing_if = "Option::is_none")]
    session: Option<TokenPair>,
}

/// `POST /auth/totp/confirm`.
#[tracing::instrument(skip_all)]
pub async fn totp_confirm(
    api: web::Data<CommandApi>,
    req: HttpRequest,
    caller: Result<Caller, ApiError>,
    JsonBody(body): JsonBody<TotpConfirmRequest>,
) -> Result<HttpResponse, ApiError> {
    let client = client(&api, &req)?;
    let caller = enrollee_caller(body.mfa_token.as_deref(), caller)?;
    let enrollee = enrollee(body.mfa_token.as_deref(), caller.as_ref())?;
    let confirmed = api
        .identity
        .confirm_totp(client, enrollee, &body.code)
        .await?;
    Ok(no_store().json(TotpConfirmed {
        recovery_codes: confirmed.recovery_codes,
        session: confirmed.tokens.map(TokenPair::from),
    }))
}

/// With an `mfa_token` the bearer token is not needed; without one it must admit the caller.
fn enrollee_caller(
    mfa_token: Option<&str>,
    caller: Result<Caller, ApiError>,
) -> Result<Option<Caller>, ApiError> {
    match mfa_token {
        Some(_) => Ok(caller.ok()),
        None => caller.map(Some),
    }
}

fn enrollee<'a>(
    mfa_token: Option<&'a str>,
    caller: Option<&'a Caller>,
) -> Result<auth::Enrollee<'a>, ApiError> {
    match (mfa_token, caller) {
        (Some(token), _) => Ok(auth::Enrollee::Challenge(token)),
        (None, Some(caller)) => Ok(auth::Enrollee::Session(&caller.0)),
        (None, None) => Err(ApiError::Unauthorized),
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
