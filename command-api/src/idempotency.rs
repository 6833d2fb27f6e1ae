//! `Idempotency-Key`: the same key with the same request within 24 hours answers with the first
//! reply and runs nothing; the same key with a different request is refused (422). The receipt
//! commits in the command's own transaction (`event_store::idempotency`), so there is no claim
//! to leave behind: a request that never committed leaves its key free.
use actix_web::HttpRequest;
use event_store::{Earlier, Receipt};
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

use crate::ApiError;

const MAX_KEY_CHARS: usize = 200;

/// The request's receipt, if it sent a key: scoped to the tenant and user that sent it, with a
/// hash of what the key stands for, and the reply it will store for a version.
pub fn receipt(
    req: &HttpRequest,
    tenant_id: Uuid,
    user_id: Uuid,
    request: &[&[u8]],
    reply: impl Fn(u64) -> Value + Send + Sync + 'static,
) -> Result<Option<Receipt>, ApiError> {
    let Some(value) = req.headers().get("idempotency-key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.chars().count() <= MAX_KEY_CHARS)
        .ok_or_else(|| {
            ApiError::BadHeader(format!(
                "Idempotency-Key must be 1 to {MAX_KEY_CHARS} visible ASCII characters"
            ))
        })?;
    let mut hasher = Sha256::new();
    for part in request {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    Ok(Some(Receipt {
        tenant_id,
        user_id,
        key: key.to_owned(),
        request_hash: hasher.finalize().to_vec(),
        reply: Box::new(reply),
    }))
}

/// The reply this key already stands for, if any.
pub async fn earlier_reply(receipt: &Receipt, pool: &PgPool) -> Result<Option<Value>, ApiError> {
    match receipt.earlier(pool).await? {
        None => Ok(None),
        Some(Earlier::Reply(reply)) => Ok(Some(reply)),
        Some(Earlier::OtherRequest) => Err(ApiError::RuleViolated {
            code: "idempotency_key_reused",
            message: "this Idempotency-Key was used for a different request".into(),
        }),
    }
}
