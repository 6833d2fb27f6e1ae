//! Reading stored events back: one stream, or everything in commit order.
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use sqlx::{FromRow, PgConnection, PgExecutor};
use uuid::Uuid;

/// An event as stored, with the columns postgres-es does not know about. This is also the body
/// of every message the relay publishes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, FromRow)]
pub struct StoredEvent {
    pub global_position: i64,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub event_type: String,
    pub event_version: String,
    pub payload: serde_json::Value,
    pub metadata: serde_json::Value,
    pub tenant_id: Uuid,
    pub recorded_at: DateTime<Utc>,
}

impl StoredEvent {
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.metadata.get(key).and_then(serde_json::Value::as_str)
    }

    pub fn meta_uuid(&self, key: &str) -> Option<Uuid> {
        self.meta(key).and_then(|v| v.parse().ok())
    }

    /// Stable identity of the message carrying this event.
    pub fn message_id(&self) -> String {
        format!(
            "{}:{}:{}",
            self.aggregate_type, self.aggregate_id, self.sequence
        )
    }

    pub fn routing_key(&self) -> String {
        format!("{}.{}", self.aggregate_type, self.event_type)
    }
}

pub(crate) const EVENT_COLUMNS: &str =
    "global_position, aggregate_type, aggregate_id, sequence, event_type, \
     event_version, payload, metadata, tenant_id, recorded_at";

/// Events of one stream after `after_sequence`, up to and including `up_to`.
pub async fn stream_range<'e>(
    executor: impl PgExecutor<'e>,
    aggregate_type: &str,
    aggregate_id: &str,
    after_sequence: i64,
    up_to: i64,
) -> Result<Vec<StoredEvent>, sqlx::Error> {
    let sql = format!(
        "select {EVENT_COLUMNS} from events where aggregate_type = $1 and aggregate_id = $2 \
         and sequence > $3 and sequence <= $4 order by sequence"
    );
    sqlx::query_as(&sql)
        .bind(aggregate_type)
        .bind(aggregate_id)
        .bind(after_sequence)
        .bind(up_to)
        .fetch_all(executor)
        .await
}

/// The last `event_type` event of one stream before `before_sequence`, if there is one.
pub async fn last_before<'e>(
    executor: impl PgExecutor<'e>,
    aggregate_type: &str,
    aggregate_id: &str,
    event_type: &str,
    before_sequence: i64,
) -> Result<Option<StoredEvent>, sqlx::Error> {
    let sql = format!(
        "select {EVENT_COLUMNS} from events where aggregate_type = $1 and aggregate_id = $2 \
         and event_type = $3 and sequence < $4 order by sequence desc limit 1"
    );
    sqlx::query_as(&sql)
        .bind(aggregate_type)
        .bind(aggregate_id)
        .bind(event_type)
        .bind(before_sequence)
        .fetch_optional(executor)
        .await
}

/// A position in commit order: the transaction and the event inside it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct CommitPosition {
    pub tx_id: i64,
    pub global_position: i64,
}

/// The next `limit` events after `after` in commit order, of one tenant or of all. Only events
/// whose transaction is older than every transaction still in flight are returned, so no late
/// commit is ever skipped.
pub async fn committed_after<'e>(
    executor: impl PgExecutor<'e>,
    after: CommitPosition,
    tenant: Option<Uuid>,
    limit: i64,
) -> Result<Vec<(CommitPosition, StoredEvent)>, sqlx::Error> {
    let sql = format!(
        "select tx_id::text::bigint as tx, {EVENT_COLUMNS} from events \
         where (tx_id, global_position) > ($1::text::xid8, $2) \
           and tx_id < pg_snapshot_xmin(pg_current_snapshot()) \
           and ($4::uuid is null or tenant_id = $4) \
         order by tx_id, global_position limit $3"
    );
    let rows: Vec<CommittedRow> = sqlx::query_as(&sql)
        .bind(after.tx_id)
        .bind(after.global_position)
        .bind(limit)
        .bind(tenant)
        .fetch_all(executor)
        .await?;
    Ok(rows.into_iter().map(CommittedRow::positioned).collect())
}

/// The last event in commit order of those every later read may take as final: it and every
/// event before it were committed by transactions older than any still in flight (the xmin
/// rule of [`committed_after`]), so nothing can commit before it any more. `None` while the
/// store holds no such event.
pub async fn committed_horizon<'e>(
    executor: impl PgExecutor<'e>,
) -> Result<Option<CommitPosition>, sqlx::Error> {
    let last: Option<(i64, i64)> = sqlx::query_as(
        "select tx_id::text::bigint, global_position from events \
         where tx_id < pg_snapshot_xmin(pg_current_snapshot()) \
         order by tx_id desc, global_position desc limit 1",
    )
    .fetch_optional(executor)
    .await?;
    Ok(last.map(|(tx_id, global_position)| CommitPosition {
        tx_id,
        global_position,
    }))
}

/// Every event after `after` up to and including `up_to` (a [`committed_horizon`]) of the
/// given aggregate types, of one tenant or of all, streamed in commit order by one query and
/// handed to `sink` in chunks of `chunk` events. A rebuild reads this way: no event is read
/// twice or skipped between chunks, the caller folds one chunk while the next is read, and
/// next time it reads on from `up_to`, past the other aggregates' events too. Ends when the
/// query is exhausted or `sink` is closed; an error is also handed on, as the last item.
pub async fn stream_committed_between(
    conn: &mut PgConnection,
    (after, up_to): (CommitPosition, CommitPosition),
    tenant: Option<Uuid>,
    aggregate_types: &[&str],
    chunk: usize,
    sink: &tokio::sync::mpsc::Sender<Result<Vec<(CommitPosition, StoredEvent)>, sqlx::Error>>,
) {
    let sql = format!(
        "select tx_id::text::bigint as tx, {EVENT_COLUMNS} from events \
         where (tx_id, global_position) > ($1::text::xid8, $2) \
           and (tx_id, global_position) <= ($3::text::xid8, $4) \
           and ($5::uuid is null or tenant_id = $5) and aggregate_type = any($6) \
         order by tx_id, global_position"
    );
    let mut rows = sqlx::query_as::<_, CommittedRow>(&sql)
        .bind(after.tx_id)
        .bind(after.global_position)
        .bind(up_to.tx_id)
        .bind(up_to.global_position)
        .bind(tenant)
        .bind(aggregate_types)
        .fetch(conn);
    let mut batch = Vec::with_capacity(chunk);
    loop {
        match rows.try_next().await {
            Ok(Some(row)) => {
                batch.push(row.positioned());
                if batch.len() < chunk {
                    continue;
                }
            }
            Ok(None) => break,
            Err(error) => {
                let _ = sink.send(Err(error)).await;
                return;
            }
        }
        let full = std::mem::replace(&mut batch, Vec::with_capacity(chunk));
        if sink.send(Ok(full)).await.is_err() {
            return;
        }
    }
    if !batch.is_empty() {
        let _ = sink.send(Ok(batch)).await;
    }
}

/// An event with its transaction id, as commit-order reads select it (`tx_id::text::bigint as tx`).
#[derive(FromRow)]
pub(crate) struct CommittedRow {
    tx: i64,
    #[sqlx(flatten)]
    event: StoredEvent,
}

impl CommittedRow {
    pub(crate) fn positioned(self) -> (CommitPosition, StoredEvent) {
        let position = CommitPosition {
            tx_id: self.tx,
            global_position: self.event.global_position,
        };
        (position, self.event)
    }
}
