//! Exactly-once application of events to a projection, per stream, in order.
//!
//! `projection_checkpoints` holds, per (projection, stream), the last sequence applied. The row
//! is locked and advanced in the same transaction as the read-model change, so a redelivered
//! event is recognised and skipped, and an event that arrives after a gap (an earlier message
//! was lost or parked) first pulls the missing events from the event store.
use event_store::history::stream_range;
use event_store::StoredEvent;
use sqlx::{PgConnection, PgExecutor};

use crate::{Projection, ProjectionError};

/// What applying one delivered event amounted to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The checkpoint was already at or past this event: a redelivery.
    AlreadyApplied,
    /// The event was the next one and was applied.
    Next,
    /// Earlier events were missing; this many events (the delivered one included) were read
    /// from the event store and applied.
    CaughtUp(usize),
}

/// Applies `event` to `projection` unless already applied, catching the stream up first when
/// earlier events never arrived. Runs inside the caller's transaction, which must set the
/// event's tenant and commit afterwards.
pub async fn apply_once(
    conn: &mut PgConnection,
    projection: &dyn Projection,
    event: &StoredEvent,
) -> Result<Applied, ProjectionError> {
    let last = lock(conn, projection.name(), event).await?;
    let applied = match event.sequence - last {
        ..=0 => return Ok(Applied::AlreadyApplied),
        1 => {
            projection.apply(conn, event).await?;
            Applied::Next
        }
        _ => Applied::CaughtUp(catch_up(conn, projection, event, last).await?),
    };
    advance(conn, projection.name(), event).await?;
    Ok(applied)
}

/// The last sequence `projection` applied of the event's stream, with the checkpoint row
/// locked until the transaction ends. The row is created first so that two workers racing on
/// a new stream serialise on it instead of both applying.
async fn lock(
    conn: &mut PgConnection,
    projection: &str,
    event: &StoredEvent,
) -> Result<i64, sqlx::Error> {
    sqlx::query(
        "insert into projection_checkpoints (projection, aggregate_type, aggregate_id, \
         last_sequence) values ($1, $2, $3, 0) on conflict do nothing",
    )
    .bind(projection)
    .bind(&event.aggregate_type)
    .bind(&event.aggregate_id)
    .execute(&mut *conn)
    .await?;
    sqlx::query_scalar(
        "select last_sequence from projection_checkpoints \
         where projection = $1 and aggregate_type = $2 and aggregate_id = $3 for update",
    )
    .bind(projection)
    .bind(&event.aggregate_type)
    .bind(&event.aggregate_id)
    .fetch_one(conn)
    .await
}

async fn advance(
    conn: &mut PgConnection,
    projection: &str,
    event: &StoredEvent,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "update projection_checkpoints set last_sequence = $4, updated_at = now() \
         where projection = $1 and aggregate_type = $2 and aggregate_id = $3",
    )
    .bind(projection)
    .bind(&event.aggregate_type)
    .bind(&event.aggregate_id)
    .bind(event.sequence)
    .execute(conn)
    .await?;
    Ok(())
}

/// Applies the stream's events after `last` up to the delivered one, read from the event store
/// (the source of truth), and returns how many. A hole in the store's answer means the
/// delivered event is not (or not yet) there: never apply past it.
async fn catch_up(
    conn: &mut PgConnection,
    projection: &dyn Projection,
    event: &StoredEvent,
    last: i64,
) -> Result<usize, ProjectionError> {
    let missing = stream_range(
        &mut *conn,
        &event.aggregate_type,
        &event.aggregate_id,
        last,
        event.sequence,
    )
    .await?;
    if !missing
        .iter()
        .map(|e| e.sequence)
        .eq(last + 1..=event.sequence)
    {
        let detail = format!(
            "the event store does not hold sequences {} to {}",
            last + 1,
            event.sequence
        );
        return Err(ProjectionError::inconsistent(event, detail));
    }
    tracing::info!(
        projection = projection.name(),
        from = last + 1,
        to = event.sequence,
        "catching up a stream from the event store"
    );
    for stored in &missing {
        projection.apply(conn, stored).await?;
    }
    Ok(missing.len())
}

/// The last sequence `projection` applied of a stream (0 when none): a reader that wrote
/// version N of an aggregate waits until this reaches N to read its own write.
pub async fn last_applied<'e>(
    executor: impl PgExecutor<'e>,
    projection: &str,
    aggregate_type: &str,
    aggregate_id: &str,
) -> Result<i64, sqlx::Error> {
    let last: Option<i64> = sqlx::query_scalar(
        "select last_sequence from projection_checkpoints \
         where projection = $1 and aggregate_type = $2 and aggregate_id = $3",
    )
    .bind(projection)
    .bind(aggregate_type)
    .bind(aggregate_id)
    .fetch_optional(executor)
    .await?;
    Ok(last.unwrap_or(0))
}
