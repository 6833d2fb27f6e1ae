//! What auditors run: an export of a tenant's events in commit order, and a check of every
//! stream's hash chain.
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use crate::history::{CommitPosition, CommittedRow};
use crate::{StoreError, StoredEvent};

/// The first event that breaks its stream's chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenLink {
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub global_position: i64,
    pub problem: ChainProblem,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainProblem {
    /// The stored hash does not match the event's content and its predecessor's hash.
    Altered,
    /// One or more events before this one are missing from the stream.
    Missing { expected_sequence: i64 },
}

impl std::fmt::Display for BrokenLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let stream = format!("{}/{}", self.aggregate_type, self.aggregate_id);
        match self.problem {
            ChainProblem::Altered => write!(
                f,
                "event {stream}#{} (global position {}) was altered: its hash does not match",
                self.sequence, self.global_position
            ),
            ChainProblem::Missing { expected_sequence } => write!(
                f,
                "event {stream}#{expected_sequence} is missing (next present: #{}, global position {})",
                self.sequence, self.global_position
            ),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    pub events_checked: i64,
    pub first_broken: Option<BrokenLink>,
}

#[derive(sqlx::FromRow)]
struct LinkRow {
    aggregate_type: String,
    aggregate_id: String,
    sequence: i64,
    global_position: i64,
    expected_sequence: i64,
}

/// Recomputes every hash from the stored content and the predecessor's stored hash, and checks
/// that sequences run 1, 2, 3… in each stream. `tenant` limits the check to one tenant.
pub async fn verify_chains(
    pool: &PgPool,
    tenant: Option<Uuid>,
) -> Result<Verification, StoreError> {
    let events_checked: i64 =
        sqlx::query_scalar("select count(*) from events where $1::uuid is null or tenant_id = $1")
            .bind(tenant)
            .fetch_one(pool)
            .await?;
    let broken: Option<LinkRow> = sqlx::query_as(
        "select * from ( \
           select aggregate_type, aggregate_id, sequence, global_position, \
                  coalesce(lag(sequence) over stream, 0) + 1 as expected_sequence, \
                  hash = event_hash(lag(hash) over stream, aggregate_type, aggregate_id, sequence, \
                                    event_type, event_version, payload, metadata) as hash_ok \
             from events where $1::uuid is null or tenant_id = $1 \
           window stream as (partition by aggregate_type, aggregate_id order by sequence)) links \
         where not hash_ok or sequence <> expected_sequence \
         order by global_position limit 1",
    )
    .bind(tenant)
    .fetch_optional(pool)
    .await?;
    Ok(Verification {
        events_checked,
        first_broken: broken.map(|row| BrokenLink {
            problem: if row.sequence != row.expected_sequence {
                ChainProblem::Missing {
                    expected_sequence: row.expected_sequence,
                }
            } else {
                ChainProblem::Altered
            },
            aggregate_type: row.aggregate_type,
            aggregate_id: row.aggregate_id,
            sequence: row.sequence,
            global_position: row.global_position,
        }),
    })
}

/// Which events an export covers.
#[derive(Debug, Clone)]
pub struct ExportFilter {
    pub tenant_id: Uuid,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub aggregate_type: Option<String>,
}

const EXPORT_BATCH: i64 = 1000;

/// Writes the matching events as NDJSON in commit order, in batches; returns how many.
pub async fn export(
    pool: &PgPool,
    filter: &ExportFilter,
    out: &mut impl std::io::Write,
) -> Result<u64, StoreError> {
    let mut after = CommitPosition::default();
    let mut written = 0;
    loop {
        let batch = export_batch(pool, filter, after).await?;
        for (position, event) in &batch {
            serde_json::to_writer(&mut *out, event)
                .map_err(|e| StoreError::Storage(e.to_string()))?;
            out.write_all(b"\n")
                .map_err(|e| StoreError::Storage(e.to_string()))?;
            after = *position;
            written += 1;
        }
        if (batch.len() as i64) < EXPORT_BATCH {
            return Ok(written);
        }
    }
}

async fn export_batch(
    pool: &PgPool,
    filter: &ExportFilter,
    after: CommitPosition,
) -> Result<Vec<(CommitPosition, StoredEvent)>, StoreError> {
    let rows: Vec<CommittedRow> = sqlx::query_as(
        "select tx_id::text::bigint as tx, global_position, aggregate_type, aggregate_id, sequence, \
                event_type, event_version, payload, metadata, tenant_id, recorded_at \
           from events \
          where tenant_id = $1 \
            and ($2::timestamptz is null or recorded_at >= $2) \
            and ($3::timestamptz is null or recorded_at < $3) \
            and ($4::text is null or aggregate_type = $4) \
            and (tx_id, global_position) > ($5::text::xid8, $6) \
            and tx_id < pg_snapshot_xmin(pg_current_snapshot()) \
          order by tx_id, global_position limit $7",
    )
    .bind(filter.tenant_id)
    .bind(filter.from)
    .bind(filter.to)
    .bind(&filter.aggregate_type)
    .bind(after.tx_id)
    .bind(after.global_position)
    .bind(EXPORT_BATCH)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(CommittedRow::positioned).collect())
}
