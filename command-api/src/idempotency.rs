//! `Idempotency-Key`: the same key with the same request within 24 hours answers with the first
//! response and runs nothing; the same key with a different request is refused (422).
use actix_web::HttpRequest;
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

use crate::ApiError;

const MAX_KEY_CHARS: usize = 200;

/// A key as one caller sent it: keys are scoped to the tenant and user that sent them.
pub struct IdempotencyKey {
    tenant_id: Uuid,
    user_id: Uuid,
    key: String,
    request_hash: Vec<u8>,
}

pub enum Reservation {
    /// First time: run the command, then `complete`.
    Fresh(IdempotencyKey),
    /// Seen before with the same request: answer with this.
    Replay(Value),
}

impl IdempotencyKey {
    /// The request's key, if it sent one, with a hash of what the key stands for.
    pub fn from_request(
        req: &HttpRequest,
        tenant_id: Uuid,
        user_id: Uuid,
        request: &[&[u8]],
    ) -> Result<Option<Self>, ApiError> {
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
        Ok(Some(Self {
            tenant_id,
            user_id,
            key: key.to_owned(),
            request_hash: hasher.finalize().to_vec(),
        }))
    }

    /// Claims the key. The insert is the lock: a concurrent retry finds the row in flight. A
    /// claim left by a process that died mid-request is given up after a minute.
    pub async fn reserve(self, pool: &PgPool) -> Result<Reservation, ApiError> {
        sqlx::query(
            "delete from idempotency_keys where tenant_id = $1 and user_id = $2 and key = $3 \
             and (created_at < now() - interval '24 hours' \
                  or (response is null and created_at < now() - interval '1 minute'))",
        )
        .bind(self.tenant_id)
        .bind(self.user_id)
        .bind(&self.key)
        .execute(pool)
        .await?;
        let claimed = sqlx::query(
            "insert into idempotency_keys (tenant_id, user_id, key, request_hash) \
             values ($1, $2, $3, $4) on conflict do nothing",
        )
        .bind(self.tenant_id)
        .bind(self.user_id)
        .bind(&self.key)
        .bind(&self.request_hash)
        .execute(pool)
        .await?;
        if claimed.rows_affected() == 1 {
            return Ok(Reservation::Fresh(self));
        }
        self.earlier_answer(pool).await
    }

    async fn earlier_answer(self, pool: &PgPool) -> Result<Reservation, ApiError> {
        let (hash, response): (Vec<u8>, Option<Value>) = sqlx::query_as(
            "select request_hash, response from idempotency_keys \
             where tenant_id = $1 and user_id = $2 and key = $3",
        )
        .bind(self.tenant_id)
        .bind(self.user_id)
        .bind(&self.key)
        .fetch_one(pool)
        .await?;
        if hash != self.request_hash {
            return Err(ApiError::RuleViolated {
                code: "idempotency_key_reused",
                message: "this Idempotency-Key was used for a different request".into(),
            });
        }
        response.map(Reservation::Replay).ok_or_else(|| {
            ApiError::Conflict("a request with this Idempotency-Key is still in progress".into())
        })
    }

    /// Stores the successful response for replays.
    pub async fn complete(self, pool: &PgPool, response: &Value) -> Result<(), ApiError> {
        sqlx::query(
            "update idempotency_keys set status = 200, response = $4 \
             where tenant_id = $1 and user_id = $2 and key = $3",
        )
        .bind(self.tenant_id)
        .bind(self.user_id)
        .bind(&self.key)
        .bind(response)
        .execute(pool)
        .await?;
        Ok(())
    }

    /// Frees the key after a failed command, so a corrected retry may use it.
    pub async fn release(self, pool: &PgPool) -> Result<(), ApiError> {
        sqlx::query(
            "delete from idempotency_keys where tenant_id = $1 and user_id = $2 and key = $3",
        )
        .bind(self.tenant_id)
        .bind(self.user_id)
        .bind(&self.key)
        .execute(pool)
        .await?;
        Ok(())
    }
}
