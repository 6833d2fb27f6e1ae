//! What every command request carries besides its body: the signed-in caller and the ids that
//! tie its events to the request.
use actix_web::HttpMessage;
use event_store::trace::RequestTrace;
use std::net::IpAddr;

use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};
use auth::{Claims, Identity};
use futures::future::LocalBoxFuture;
use uuid::Uuid;

use crate::ApiError;

/// The caller, admitted by [`Identity::admit`]: a valid access token of a live session, within
/// the rate limits. Extracted before the body, so a refused request is never read.
#[derive(Debug, Clone)]
pub struct Caller(pub Claims);

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let identity = req.app_data::<web::Data<Identity>>().cloned();
        let token = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(auth::bearer_token)
            .map(str::to_owned);
        Box::pin(async move {
            let identity = identity.ok_or_else(|| {
                ApiError::Internal("the identity service is not configured".into())
            })?;
            let token = token.ok_or(ApiError::Unauthorized)?;
            Ok(Caller(identity.admit(&token).await?))
        })
    }
}

/// Request, correlation and client identifiers for event metadata.
#[derive(Debug, Clone)]
pub struct RequestIds {
    pub request_id: Uuid,
    pub correlation_id: Uuid,
    pub client: Option<String>,
    /// The request span's W3C trace context, when the server traces requests.
    pub traceparent: Option<String>,
}

impl RequestIds {
    /// A client may pass its own correlation id to tie several requests together. The
    /// request id and trace context are the request span's, when the server set them.
    pub fn from_request(req: &HttpRequest) -> Result<Self, ApiError> {
        let traced = req.extensions().get::<RequestTrace>().copied();
        let request_id = traced.map_or_else(Uuid::new_v4, |t| t.request_id);
        let correlation_id = header_uuid(req, "x-correlation-id")?.unwrap_or(request_id);
        let client = req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.chars().take(200).collect());
        Ok(Self {
            request_id,
            correlation_id,
            client,
            traceparent: traced.map(|t| t.trace.to_string()),
        })
    }
}

fn header_uuid(req: &HttpRequest, name: &str) -> Result<Option<Uuid>, ApiError> {
    let Some(value) = req.headers().get(name) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .map(Some)
        .ok_or_else(|| ApiError::BadHeader(format!("{name} must be a UUID")))
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

/// The client's address: the TCP peer, or, when the peer is one of `trusted_proxies` (the
/// load balancer), the address that proxy appended last to `X-Forwarded-For`. Anything a
/// client writes into that header itself comes before, and is never believed.
pub fn client_address(req: &HttpRequest, trusted_proxies: &[IpAddr]) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip();
    if !trusted_proxies.contains(&peer) {
        return Some(peer);
    }
    // Only the very last entry is the proxy's; if it is not an address, believe none of them.
    let last = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .last()
        .map(str::trim);
    let forwarded = last.and_then(|a| {
        a.parse::<IpAddr>()
            .ok()
            .or_else(|| a.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()))
    });
    Some(forwarded.unwrap_or(peer))
}
