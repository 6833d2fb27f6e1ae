//! `b2b events export` with its proof, and `b2b audit verify-export`, which checks such a file
//! offline: the signature of its checkpoint with a public key the auditor trusts, every event's
//! hash recomputed from its content, and every signed stream head reached.
//!
//! The file is NDJSON. When the tenant has a signed checkpoint, the first line is the proof
//! (`{"checkpoint": …, "heads": […], "scope": …}`); every other line is one event in commit
//! order, with its `chain_version`, `previous_hash` and `hash`. Payload and metadata are the
//! stored JSON text itself, so their bytes are the ones the hash covers.
use std::io::BufRead;

use chrono::{DateTime, Utc};
use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::chain::{trim_json, EventContent, Hash, V1};
use super::checkpoint::{Head, Heads, SignedCheckpoint, Statement};
use super::rows::{hash_or_zero, ChainRow, CHAIN_COLUMNS, PREDECESSOR};
use super::signer::latest;
use super::walk::{Findings, Link, Walk};
use crate::history::CommitPosition;
use crate::StoreError;

/// Which events an export covers.
#[derive(Debug, Clone)]
pub struct ExportFilter {
    pub tenant_id: Uuid,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub aggregate_type: Option<String>,
}

/// The filter as the proof line states it (every event of the tenant when all are empty).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportScope {
    pub aggregate_type: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

impl ExportScope {
    /// Whole streams: a time window cuts streams, so what lies outside it cannot be vouched for.
    pub fn whole_streams(&self) -> bool {
        self.from.is_none() && self.to.is_none()
    }
}

/// The first line of an export with a proof.
#[derive(Debug, Serialize, Deserialize)]
pub struct ExportProof {
    pub checkpoint: SignedCheckpoint,
    /// Every stream head the checkpoint signed, whatever the scope: the root covers all.
    pub heads: Vec<ExportedHead>,
    pub scope: ExportScope,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ExportedHead {
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    #[serde(with = "hex::serde")]
    pub hash: Hash,
}

/// One event line: the stored event's fields, then its place in the chain.
#[derive(Debug, Serialize, Deserialize)]
pub struct ExportedEvent {
    pub global_position: i64,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub event_type: String,
    pub event_version: String,
    pub payload: Box<RawValue>,
    pub metadata: Box<RawValue>,
    pub tenant_id: Uuid,
    pub recorded_at: DateTime<Utc>,
    pub chain_version: i16,
    #[serde(with = "optional_hex")]
    pub previous_hash: Option<Hash>,
    #[serde(with = "hex::serde")]
    pub hash: Hash,
    /// Chain version 1 hashed the stored text whole: when whitespace surrounds the JSON value,
    /// the stored text itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored_payload: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored_metadata: Option<String>,
    /// For an event holding sealed personal data (`crate::personal`): its payload with that data
    /// revealed as of the export, plain text or the erased marker. `payload` stays as stored:
    /// it is what the hash covers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revealed_payload: Option<serde_json::Value>,
}

impl ExportedEvent {
    fn from_row(row: ChainRow) -> Result<Self, StoreError> {
        let previous_hash = row.previous();
        let (payload, stored_payload) = json_and_stored(row.payload, row.chain_version)?;
        let (metadata, stored_metadata) = json_and_stored(row.metadata, row.chain_version)?;
        Ok(Self {
            global_position: row.global_position,
            aggregate_type: row.aggregate_type,
            aggregate_id: row.aggregate_id,
            sequence: row.sequence,
            event_type: row.event_type,
            event_version: row.event_version,
            payload,
            metadata,
            tenant_id: row.tenant_id,
            recorded_at: row.recorded_at,
            chain_version: row.chain_version,
            previous_hash,
            hash: hash_or_zero(&row.hash),
            stored_payload,
            stored_metadata,
            revealed_payload: None,
        })
    }

    /// The payload as a value when it holds sealed personal data.
    fn sealed_payload(&self) -> Option<serde_json::Value> {
        let payload = serde_json::from_str(self.payload.get()).ok()?;
        crate::personal::holds_sealed(&payload).then_some(payload)
    }

    fn content(&self) -> EventContent<'_> {
        EventContent {
            chain_version: self.chain_version,
            tenant_id: self.tenant_id,
            aggregate_type: &self.aggregate_type,
            aggregate_id: &self.aggregate_id,
            sequence: self.sequence,
            global_position: self.global_position,
            recorded_at: self.recorded_at,
            event_type: &self.event_type,
            event_version: &self.event_version,
            payload: self.stored_payload.as_deref().unwrap_or(self.payload.get()),
            metadata: self
                .stored_metadata
                .as_deref()
                .unwrap_or(self.metadata.get()),
        }
    }

    fn link(&self) -> Link<'_> {
        let recomputed = self.content().hash(self.previous_hash.as_ref());
        Link {
            aggregate_type: &self.aggregate_type,
            aggregate_id: &self.aggregate_id,
            sequence: self.sequence,
            global_position: self.global_position,
            chain_version: self.chain_version,
            previous: self.previous_hash,
            hash: self.hash,
            intact: recomputed == Some(self.hash),
        }
    }
}

/// The stored JSON text as a JSON value of the line, and, where version 1 hashed whitespace
/// around it, the text itself.
fn json_and_stored(
    stored: String,
    chain_version: i16,
) -> Result<(Box<RawValue>, Option<String>), StoreError> {
    let value = RawValue::from_string(trim_json(&stored).to_owned())
        .map_err(|e| StoreError::Storage(format!("stored JSON does not parse: {e}")))?;
    let keep = chain_version == V1 && value.get() != stored;
    Ok((value, keep.then_some(stored)))
}

const EXPORT_BATCH: i64 = 1000;

fn io_error(error: impl std::fmt::Display) -> StoreError {
    StoreError::Storage(error.to_string())
}

/// Writes the proof (when the tenant has a checkpoint) and the matching events as NDJSON in
/// commit order, in batches; returns how many events, and the checkpoint the proof carries.
/// Everything is read in one snapshot, so the file holds every event its checkpoint covers
/// (they were committed before the checkpoint was) and nothing half-committed.
pub async fn export(
    pool: &PgPool,
    filter: &ExportFilter,
    out: &mut impl std::io::Write,
) -> Result<(u64, Option<Statement>), StoreError> {
    let mut tx = pool.begin().await?;
    sqlx::query("set transaction isolation level repeatable read, read only")
        .execute(&mut *tx)
        .await?;
    let checkpoint = latest(&mut tx, filter.tenant_id).await?;
    let statement = checkpoint.as_ref().map(|c| c.signed.statement.clone());
    if let Some(checkpoint) = checkpoint {
        let proof = ExportProof {
            heads: checkpoint
                .heads
                .into_iter()
                .map(|((aggregate_type, aggregate_id), head)| ExportedHead {
                    aggregate_type,
                    aggregate_id,
                    sequence: head.sequence,
                    hash: head.hash,
                })
                .collect(),
            checkpoint: checkpoint.signed,
            scope: ExportScope {
                aggregate_type: filter.aggregate_type.clone(),
                from: filter.from,
                to: filter.to,
            },
        };
        write_line(out, &proof)?;
    }
    let mut after = CommitPosition::default();
    let mut written = 0;
    loop {
        let batch = export_batch(&mut tx, filter, after).await?;
        let full = batch.len() as i64 == EXPORT_BATCH;
        let mut lines = Vec::with_capacity(batch.len());
        for (position, row) in batch {
            after = position;
            lines.push(ExportedEvent::from_row(row)?);
        }
        reveal_personal_data(&mut tx, &mut lines).await?;
        for line in &lines {
            write_line(out, line)?;
            written += 1;
        }
        if !full {
            return Ok((written, statement));
        }
    }
}

/// Fills in `revealed_payload` for the events holding sealed personal data.
async fn reveal_personal_data(
    conn: &mut PgConnection,
    lines: &mut [ExportedEvent],
) -> Result<(), StoreError> {
    for line in lines.iter_mut() {
        line.revealed_payload = line.sealed_payload();
    }
    let payloads = lines
        .iter_mut()
        .filter_map(|line| Some((line.tenant_id, line.revealed_payload.as_mut()?)))
        .collect();
    crate::personal::reveal(conn, payloads).await
}

fn write_line(out: &mut impl std::io::Write, line: &impl Serialize) -> Result<(), StoreError> {
    serde_json::to_writer(&mut *out, line).map_err(io_error)?;
    out.write_all(b"\n").map_err(io_error)
}

#[derive(sqlx::FromRow)]
struct ExportRow {
    tx: i64,
    #[sqlx(flatten)]
    row: ChainRow,
}

async fn export_batch(
    conn: &mut PgConnection,
    filter: &ExportFilter,
    after: CommitPosition,
) -> Result<Vec<(CommitPosition, ChainRow)>, StoreError> {
    let sql = format!(
        "select e.tx_id::text::bigint as tx, {CHAIN_COLUMNS}, p.hash as previous_hash \
           from events e {PREDECESSOR} \
          where e.tenant_id = $1 \
            and ($2::timestamptz is null or e.recorded_at >= $2) \
            and ($3::timestamptz is null or e.recorded_at < $3) \
            and ($4::text is null or e.aggregate_type = $4) \
            and (e.tx_id, e.global_position) > ($5::text::xid8, $6) \
          order by e.tx_id, e.global_position limit $7"
    );
    let rows: Vec<ExportRow> = sqlx::query_as(&sql)
        .bind(filter.tenant_id)
        .bind(filter.from)
        .bind(filter.to)
        .bind(&filter.aggregate_type)
        .bind(after.tx_id)
        .bind(after.global_position)
        .bind(EXPORT_BATCH)
        .fetch_all(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let position = CommitPosition {
                tx_id: r.tx,
                global_position: r.row.global_position,
            };
            (position, r.row)
        })
        .collect())
}

/// What an export's check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportVerification {
    /// The checkpoint, signed by the trusted key over the heads the file lists.
    pub checkpoint: Statement,
    pub scope: ExportScope,
    /// Signed heads within the scope: every one must be reached by the file's events.
    pub streams_in_scope: usize,
    pub findings: Findings,
}

impl ExportVerification {
    /// Intact, and complete up to the checkpoint within its scope.
    pub fn passed(&self) -> bool {
        self.findings.first_broken.is_none() && self.scope.whole_streams()
    }
}

/// Checks an export without any database. An error is a file that cannot be checked at all (no
/// proof, a checkpoint the trusted key did not sign, a line that is not an event of the tenant).
pub fn verify_export(
    file: impl BufRead,
    trusted: &VerifyingKey,
) -> Result<ExportVerification, StoreError> {
    let refused = |why: String| StoreError::Audit(format!("export refused: {why}"));
    let mut lines = file.lines().enumerate();
    let proof: ExportProof = match lines.next() {
        Some((_, line)) => serde_json::from_str(&line.map_err(io_error)?).map_err(|_| {
            refused(
                "its first line is not a signed checkpoint (sign one with `b2b audit \
                 checkpoint`, then export again)"
                    .into(),
            )
        })?,
        None => return Err(refused("the file is empty".into())),
    };
    let heads: Heads = proof
        .heads
        .into_iter()
        .map(|h| {
            let head = Head {
                sequence: h.sequence,
                hash: h.hash,
            };
            ((h.aggregate_type, h.aggregate_id), head)
        })
        .collect();
    proof
        .checkpoint
        .check(trusted, &heads)
        .map_err(|problem| refused(problem.to_string()))?;
    let tenant = proof.checkpoint.statement.tenant_id;
    let in_scope: Heads = heads
        .into_iter()
        .filter(|((aggregate_type, _), _)| {
            proof
                .scope
                .aggregate_type
                .as_ref()
                .is_none_or(|only| only == aggregate_type)
        })
        .collect();
    let streams_in_scope = in_scope.len();
    let mut walk = Walk::checking(in_scope);
    for (index, line) in lines {
        let line = line.map_err(io_error)?;
        if line.trim().is_empty() {
            continue;
        }
        let event: ExportedEvent = serde_json::from_str(&line)
            .map_err(|e| refused(format!("line {} is not an event: {e}", index + 1)))?;
        if event.tenant_id != tenant {
            return Err(refused(format!(
                "line {} is an event of tenant {}, the checkpoint is of tenant {tenant}",
                index + 1,
                event.tenant_id
            )));
        }
        walk.push(event.link());
    }
    Ok(ExportVerification {
        checkpoint: proof.checkpoint.statement,
        scope: proof.scope,
        streams_in_scope,
        findings: walk.finish().0,
    })
}

/// An optional digest as hex text, or null.
mod optional_hex {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::Hash;

    pub fn serialize<S: Serializer>(hash: &Option<Hash>, serializer: S) -> Result<S::Ok, S::Error> {
        hash.map(hex::encode).serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Hash>, D::Error> {
        Option::<String>::deserialize(deserializer)?
            .map(|text| {
                let mut hash = Hash::default();
                hex::decode_to_slice(text, &mut hash).map_err(serde::de::Error::custom)?;
                Ok(hash)
            })
            .transpose()
    }
}
