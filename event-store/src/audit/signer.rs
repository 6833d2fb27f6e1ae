//! Making signed checkpoints: on demand (`b2b audit checkpoint`) and by the worker that the
//! relay's process runs. A checkpoint extends the tenant's previous one: before signing, the
//! previous checkpoint must still verify with this key, and every event since must chain on from
//! the heads it signed (hashes recomputed here, not trusted). So a rewrite made between two
//! checkpoints is refused rather than signed, and the worker says so in its log.
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use ed25519_dalek::SigningKey;
use futures::TryStreamExt;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::checkpoint::{CheckpointProblem, Head, Heads, SignedCheckpoint, Statement};
use super::rows::{hash_or_zero, ChainRow, CHAIN_COLUMNS, PREDECESSOR};
use super::walk::{BrokenLink, Walk};
use crate::StoreError;

/// A checkpoint as stored, with the heads it signed.
#[derive(Debug, Clone)]
pub struct StoredCheckpoint {
    pub signed: SignedCheckpoint,
    pub heads: Heads,
    /// The snapshot whose committed events it covers: the next checkpoint reads what it did
    /// not see.
    covered_snapshot: String,
}

#[derive(sqlx::FromRow)]
struct CheckpointRow {
    tenant_id: Uuid,
    number: i64,
    last_global_position: i64,
    streams: i64,
    events: i64,
    made_at: DateTime<Utc>,
    heads_root: Vec<u8>,
    covered_snapshot: String,
    public_key: Vec<u8>,
    signature: Vec<u8>,
}

/// The tenant's latest checkpoint, with its heads.
pub async fn latest(
    conn: &mut PgConnection,
    tenant: Uuid,
) -> Result<Option<StoredCheckpoint>, StoreError> {
    let row: Option<CheckpointRow> = sqlx::query_as(
        "select tenant_id, number, last_global_position, streams, events, made_at, heads_root, \
                covered_snapshot::text as covered_snapshot, public_key, signature \
           from audit_checkpoints where tenant_id = $1 order by number desc limit 1",
    )
    .bind(tenant)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let heads = heads_of(conn, tenant, row.number).await?;
    Ok(Some(StoredCheckpoint {
        signed: SignedCheckpoint {
            statement: Statement {
                tenant_id: row.tenant_id,
                number: row.number,
                last_global_position: row.last_global_position,
                streams: row.streams,
                events: row.events,
                made_at: row.made_at,
                heads_root: hash_or_zero(&row.heads_root),
            },
            public_key: row.public_key,
            signature: row.signature,
        },
        heads,
        covered_snapshot: row.covered_snapshot,
    }))
}

/// Each stream's latest head row at or below checkpoint `number`.
async fn heads_of(conn: &mut PgConnection, tenant: Uuid, number: i64) -> Result<Heads, StoreError> {
    let rows: Vec<(String, String, i64, Vec<u8>)> = sqlx::query_as(
        "select distinct on (aggregate_type, aggregate_id) aggregate_type, aggregate_id, \
                sequence, hash \
           from audit_checkpoint_heads where tenant_id = $1 and checkpoint_number <= $2 \
          order by aggregate_type, aggregate_id, checkpoint_number desc",
    )
    .bind(tenant)
    .bind(number)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(aggregate_type, aggregate_id, sequence, hash)| {
            let head = Head {
                sequence,
                hash: hash_or_zero(&hash),
            };
            ((aggregate_type, aggregate_id), head)
        })
        .collect())
}

/// What one attempt to checkpoint a tenant did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Made(Statement),
    /// No event since the latest checkpoint (its number; none for a tenant without events).
    Current(Option<i64>),
    /// Another process is checkpointing this tenant right now.
    Busy,
    Refused(Refusal),
}

/// Why a checkpoint was not signed: the history no longer extends what was signed before.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(transparent)]
    Previous(#[from] CheckpointProblem),
    #[error("{0}")]
    History(BrokenLink),
}

/// Serialises checkpointing per tenant across processes (with the tenant's hash).
const LOCK_CLASS: i32 = 0x0b2b_0a0d;

/// Signs a checkpoint of `tenant`'s events committed so far, if any came since its last one.
#[tracing::instrument(skip(pool, key))]
pub async fn make_checkpoint(
    pool: &PgPool,
    key: &SigningKey,
    tenant: Uuid,
) -> Result<Outcome, StoreError> {
    let mut tx = pool.begin().await?;
    // The worker's login sees only the tenant its transaction names in the checkpoint tables
    // (row-level security, migration 0023); the owner's commands see every tenant anyway.
    sqlx::query("select set_config('app.tenant_id', $1, true)")
        .bind(tenant.to_string())
        .execute(&mut *tx)
        .await?;
    let locked: bool =
        sqlx::query_scalar("select pg_try_advisory_xact_lock($1, hashtext($2::text))")
            .bind(LOCK_CLASS)
            .bind(tenant)
            .fetch_one(&mut *tx)
            .await?;
    if !locked {
        return Ok(Outcome::Busy);
    }
    let previous = latest(&mut tx, tenant).await?;
    if let Some(previous) = &previous {
        if let Err(problem) = previous.signed.check(&key.verifying_key(), &previous.heads) {
            return Ok(Outcome::Refused(problem.into()));
        }
    }
    // What is committed now: the checkpoint covers exactly the tenant's events in it.
    let snapshot: String = sqlx::query_scalar("select pg_current_snapshot()::text")
        .fetch_one(&mut *tx)
        .await?;
    let since = Since::after(previous);
    let extended = extend(&mut tx, tenant, &since, &snapshot).await?;
    let (last_global_position, heads) = match extended {
        Extended::Nothing => {
            let latest = (since.number > 1).then_some(since.number - 1);
            return Ok(Outcome::Current(latest));
        }
        Extended::Broken(broken) => return Ok(Outcome::Refused(Refusal::History(broken))),
        Extended::To {
            last_global_position,
            heads,
        } => (last_global_position, heads),
    };
    // Postgres keeps microseconds: what is signed is what is stored.
    let made_at = Utc::now().trunc_subsecs(6);
    let statement = Statement::over(tenant, since.number, last_global_position, &heads, made_at);
    let signed = SignedCheckpoint::sign(statement.clone(), key);
    store(
        &mut tx,
        &signed,
        &snapshot,
        &changed_heads(&since.heads, &heads),
    )
    .await?;
    tx.commit().await?;
    Ok(Outcome::Made(statement))
}

/// Where a tenant's next checkpoint starts.
struct Since {
    number: i64,
    heads: Heads,
    /// The previous checkpoint's snapshot: what it covered.
    snapshot: Option<String>,
    last_global_position: i64,
}

impl Since {
    fn after(previous: Option<StoredCheckpoint>) -> Self {
        match previous {
            Some(previous) => Self {
                number: previous.signed.statement.number + 1,
                heads: previous.heads,
                snapshot: Some(previous.covered_snapshot),
                last_global_position: previous.signed.statement.last_global_position,
            },
            None => Self {
                number: 1,
                heads: Heads::new(),
                snapshot: None,
                last_global_position: 0,
            },
        }
    }
}

enum Extended {
    Nothing,
    Broken(BrokenLink),
    To {
        last_global_position: i64,
        heads: Heads,
    },
}

/// The tenant's events committed in `snapshot` that the previous checkpoint's did not see,
/// walked on from the heads it signed. Their transactions all started at or after that
/// snapshot's oldest running one, which bounds the scan of the tenant's commit-order index.
async fn extend(
    conn: &mut PgConnection,
    tenant: Uuid,
    since: &Since,
    snapshot: &str,
) -> Result<Extended, StoreError> {
    let sql = format!(
        "select {CHAIN_COLUMNS}, p.hash as previous_hash from events e {PREDECESSOR} \
          where e.tenant_id = $1 \
            and e.tx_id >= coalesce(pg_snapshot_xmin($2::text::pg_snapshot), '0'::xid8) \
            and ($2::text is null or not pg_visible_in_snapshot(e.tx_id, $2::text::pg_snapshot)) \
            and pg_visible_in_snapshot(e.tx_id, $3::text::pg_snapshot) \
          order by e.aggregate_type, e.aggregate_id, e.sequence"
    );
    let mut rows = sqlx::query_as::<_, ChainRow>(&sql)
        .bind(tenant)
        .bind(since.snapshot.as_deref())
        .bind(snapshot)
        .fetch(conn);
    let mut walk = Walk::extending(since.heads.clone());
    let mut last_global_position = since.last_global_position;
    while let Some(row) = rows.try_next().await? {
        walk.push(row.link());
        last_global_position = last_global_position.max(row.global_position);
    }
    let (findings, heads) = walk.finish();
    Ok(match findings.first_broken {
        Some(broken) => Extended::Broken(broken),
        None if findings.events == 0 => Extended::Nothing,
        None => Extended::To {
            last_global_position,
            heads,
        },
    })
}

/// The heads that moved since the previous checkpoint: the only ones stored anew.
fn changed_heads(before: &Heads, after: &Heads) -> Heads {
    after
        .iter()
        .filter(|(key, head)| before.get(*key) != Some(head))
        .map(|(key, head)| (key.clone(), *head))
        .collect()
}

/// Rows per statement when storing heads.
const HEADS_PER_INSERT: usize = 10_000;

async fn store(
    conn: &mut PgConnection,
    signed: &SignedCheckpoint,
    snapshot: &str,
    changed: &Heads,
) -> Result<(), StoreError> {
    let statement = &signed.statement;
    sqlx::query(
        "insert into audit_checkpoints (tenant_id, number, last_global_position, streams, events, \
                made_at, heads_root, covered_snapshot, public_key, signature) \
         values ($1, $2, $3, $4, $5, $6, $7, $8::text::pg_snapshot, $9, $10)",
    )
    .bind(statement.tenant_id)
    .bind(statement.number)
    .bind(statement.last_global_position)
    .bind(statement.streams)
    .bind(statement.events)
    .bind(statement.made_at)
    .bind(statement.heads_root.as_slice())
    .bind(snapshot)
    .bind(&signed.public_key)
    .bind(&signed.signature)
    .execute(&mut *conn)
    .await?;
    let heads: Vec<_> = changed.iter().collect();
    for chunk in heads.chunks(HEADS_PER_INSERT) {
        let types: Vec<&str> = chunk.iter().map(|((t, _), _)| t.as_str()).collect();
        let ids: Vec<&str> = chunk.iter().map(|((_, id), _)| id.as_str()).collect();
        let sequences: Vec<i64> = chunk.iter().map(|(_, head)| head.sequence).collect();
        let hashes: Vec<&[u8]> = chunk.iter().map(|(_, head)| head.hash.as_slice()).collect();
        sqlx::query(
            "insert into audit_checkpoint_heads \
                    (tenant_id, aggregate_type, aggregate_id, checkpoint_number, sequence, hash) \
             select $1, h.aggregate_type, h.aggregate_id, $2, h.sequence, h.hash \
               from unnest($3::text[], $4::text[], $5::bigint[], $6::bytea[]) \
                    as h(aggregate_type, aggregate_id, sequence, hash)",
        )
        .bind(statement.tenant_id)
        .bind(statement.number)
        .bind(&types)
        .bind(&ids)
        .bind(&sequences)
        .bind(&hashes)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Every tenant, by id and slug.
pub async fn tenants(pool: &PgPool, only: Option<Uuid>) -> Result<Vec<(Uuid, String)>, StoreError> {
    Ok(sqlx::query_as(
        "select id, slug from tenants where $1::uuid is null or id = $1 order by slug",
    )
    .bind(only)
    .fetch_all(pool)
    .await?)
}

/// The worker: every `every`, a checkpoint of each tenant with new events. It never stops on
/// its own: a refusal (tampering) or a database error is logged and tried again next time.
pub async fn run(pool: PgPool, key: SigningKey, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if let Err(error) = checkpoint_all(&pool, &key).await {
            tracing::warn!(%error, "could not make audit checkpoints");
        }
    }
}

async fn checkpoint_all(pool: &PgPool, key: &SigningKey) -> Result<(), StoreError> {
    for (tenant, slug) in tenants(pool, None).await? {
        match make_checkpoint(pool, key, tenant).await? {
            Outcome::Made(statement) => tracing::info!(
                tenant = slug,
                number = statement.number,
                events = statement.events,
                last_global_position = statement.last_global_position,
                "audit checkpoint signed"
            ),
            Outcome::Refused(refusal) => tracing::error!(
                tenant = slug,
                %refusal,
                "audit checkpoint refused: the history does not extend the signed one"
            ),
            Outcome::Current(_) | Outcome::Busy => {}
        }
    }
    Ok(())
}
