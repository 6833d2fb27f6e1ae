//! What every command request carries besides its body: the signed-in caller and the ids that
//! tie its events to the request.
use std::future::{ready, Ready};

use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};
use auth::{Claims, TokenKeys};
use uuid::Uuid;

use crate::ApiError;

/// The caller, from a valid `Authorization: Bearer` access token.
#[derive(Debug, Clone)]
pub struct Caller(pub Claims);

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        ready(caller(req))
    }
}

fn caller(req: &HttpRequest) -> Result<Caller, ApiError> {
    let keys = req
        .app_data::<web::Data<TokenKeys>>()
        .ok_or_else(|| ApiError::Internal("token keys are not configured".into()))?;
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or(ApiError::Unauthorized)?;
    keys.verify(token.trim())
        .map(Caller)
        .map_err(|_| ApiError::Unauthorized)
}

/// Request, correlation and client identifiers for event metadata.
#[derive(Debug, Clone)]
pub struct RequestIds {
    pub request_id: Uuid,
    pub correlation_id: Uuid,
    pub client: Option<String>,
}

impl RequestIds {
    /// A client may pass its own correlation id to tie several requests together.
    pub fn from_request(req: &HttpRequest) -> Self {
        let request_id = Uuid::new_v4();
        let correlation_id = header_uuid(req, "x-correlation-id").unwrap_or(request_id);
        let client = req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.chars().take(200).collect());
        Self {
            request_id,
            correlation_id,
            client,
        }
    }
}

fn header_uuid(req: &HttpRequest, name: &str) -> Option<Uuid> {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// `If-Match: "3"` (quotes optional) → 3.
pub fn expected_version(req: &HttpRequest) -> Result<Option<u64>, ApiError> {
    let Some(value) = req.headers().get(header::IF_MATCH) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .map(|v| v.trim().trim_start_matches("W/").trim_matches('"'))
        .and_then(|v| v.parse().ok())
        .map(Some)
        .ok_or_else(|| ApiError::BadHeader("If-Match must be a version like \"3\"".into()))
}
