//! `Idempotency-Key` receipts. A receipt is written in the command's own transaction, with its
//! events, so a key is recorded if and only if its command committed: a retry after any crash
//! either finds the receipt and replays its reply, or finds nothing and runs the command (which
//! then commits at most once, because a concurrent twin fails on the receipt's primary key).
//! A receipt answers for its key for 24 hours (`idempotency_cutoff`, migration 0021).
use std::time::Duration;

use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

/// One caller's key and the request it stands for; keys are scoped to tenant and user.
pub struct Receipt {
    pub tenant_id: Uuid,
    pub user_id: Uuid,
    pub key: String,
    pub request_hash: Vec<u8>,
    /// The reply to store for a given aggregate version after the command.
    pub reply: Box<dyn Fn(u64) -> Value + Send + Sync>,
}

/// What a key already answers.
pub enum Earlier {
    /// The same request committed before: answer with this.
    Reply(Value),
    /// The key was used for a different request.
    OtherRequest,
}

impl Receipt {
    pub(crate) fn reply(&self, version: u64) -> Value {
        (self.reply)(version)
    }

    /// The earlier answer for this key, if one is live. An expired receipt is removed in the
    /// same round trip, so the key is free again for the insert that follows.
    pub async fn earlier(&self, pool: &PgPool) -> Result<Option<Earlier>, sqlx::Error> {
        let found: Option<(Vec<u8>, Option<Value>)> =
            sqlx::query_as("select request_hash, response from idempotency_receipt($1, $2, $3)")
                .bind(self.tenant_id)
                .bind(self.user_id)
                .bind(&self.key)
                .fetch_optional(pool)
                .await?;
        Ok(found.map(|(hash, response)| match response {
            Some(reply) if hash == self.request_hash => Earlier::Reply(reply),
            _ => Earlier::OtherRequest,
        }))
    }

    /// Records the reply of a command that appended nothing (there is no transaction to join).
    pub(crate) async fn record_alone(
        &self,
        pool: &PgPool,
        version: u64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "insert into idempotency_keys (tenant_id, user_id, key, request_hash, status, response) \
             select $1, $2, $3, $4, 200, $5 \
               from (select set_config('app.tenant_id', $1::text, true)) as tenant",
        )
        .bind(self.tenant_id)
        .bind(self.user_id)
        .bind(&self.key)
        .bind(&self.request_hash)
        .bind(self.reply(version))
        .execute(pool)
        .await?;
        Ok(())
    }
}

/// Receipts removed per statement by the sweep: small enough that no statement holds many row
/// locks or runs long.
const SWEEP_BATCH: i64 = 5_000;

/// Removes every receipt older than the retention, a batch at a time, and returns how many.
/// `earlier` ignores (and frees) an expired key on its own; the sweep keeps keys that are never
/// retried from piling up. Receipts of every tenant, so through `sweep_idempotency_receipts`,
/// which runs as the owner and deletes nothing but expired receipts.
pub async fn sweep_expired(pool: &PgPool) -> Result<u64, sqlx::Error> {
    let mut removed = 0;
    loop {
        let batch: i64 = sqlx::query_scalar("select sweep_idempotency_receipts($1)")
            .bind(SWEEP_BATCH)
            .fetch_one(pool)
            .await?;
        removed += batch.unsigned_abs();
        if batch < SWEEP_BATCH {
            return Ok(removed);
        }
    }
}

/// Sweeps every `every`, until the task is dropped. Every command-API replica runs one: two
/// sweeps at once only find less to delete.
pub async fn run_sweeper(pool: PgPool, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match sweep_expired(&pool).await {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, "expired idempotency receipts removed"),
            Err(error) => tracing::warn!(%error, "could not sweep idempotency receipts"),
        }
    }
}
