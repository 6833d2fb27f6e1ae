//! Step 2: the event store replayed in commit order into the rebuild schema, a batch per
//! transaction, each recording how far it got.
use std::time::Instant;

use event_store::history::{committed_after, CommitPosition};
use event_store::StoredEvent;
use sqlx::{PgConnection, PgPool};

use super::{RebuildProgress, RebuildScope, Target};
use crate::checkpoint;
use crate::{Projection, ProjectionError};

/// The replay of one rebuild.
pub(super) struct Replay<'a> {
    pub(super) projection: &'a dyn Projection,
    pub(super) scope: RebuildScope,
    pub(super) schema: &'a str,
    pub(super) batch_size: i64,
    pub(super) progress: &'a (dyn Fn(&RebuildProgress) + Sync),
}

impl Replay<'_> {
    /// Replays every committed event after `from` into the rebuild schema, one transaction per
    /// batch (which also records how far it got), until a batch comes back short: the replay
    /// has reached what is committed now.
    pub(super) async fn run(
        &self,
        pool: &PgPool,
        (from, replayed_before): (CommitPosition, i64),
    ) -> Result<(CommitPosition, u64), ProjectionError> {
        let (mut position, mut applied, mut read) = (from, 0u64, 0u64);
        let started = Instant::now();
        loop {
            let mut tx = pool.begin().await?;
            let target = Target {
                projection: self.projection,
                scope: self.scope,
                schema: self.schema,
            };
            let batch = replay_batch(&mut tx, &target, position, self.batch_size).await?;
            position = batch.position;
            applied += batch.applied;
            read += batch.read as u64;
            let replayed = replayed_before + read as i64;
            self.record(&mut tx, position, replayed).await?;
            let total: i64 =
                sqlx::query_scalar("select coalesce(max(global_position), 0) from events")
                    .fetch_one(&mut *tx)
                    .await?;
            tx.commit().await?;
            (self.progress)(&self.progress_of(position, replayed, total, read, started));
            if batch.read < self.batch_size {
                return Ok((position, applied));
            }
        }
    }

    async fn record(
        &self,
        conn: &mut PgConnection,
        position: CommitPosition,
        replayed: i64,
    ) -> Result<(), sqlx::Error> {
        let table = format!("{}.rebuild_progress", self.schema);
        sqlx::raw_sql(&format!("delete from {table}"))
            .execute(&mut *conn)
            .await?;
        sqlx::query(&format!(
            "insert into {table} (tx_id, global_position, replayed) values ($1, $2, $3)"
        ))
        .bind(position.tx_id)
        .bind(position.global_position)
        .bind(replayed)
        .execute(conn)
        .await?;
        Ok(())
    }

    fn progress_of(
        &self,
        position: CommitPosition,
        replayed: i64,
        total: i64,
        read: u64,
        started: Instant,
    ) -> RebuildProgress {
        let rate = read as f64 / started.elapsed().as_secs_f64().max(f64::EPSILON);
        let left = (total - position.global_position).max(0) as f64;
        RebuildProgress {
            projection: self.projection.name().to_owned(),
            tenant: self.scope.tenant(),
            replayed,
            total,
            position: position.global_position,
            rate,
            // A tenant's replay reads only its events of the positions left: no estimate.
            seconds_left: (rate > 0.0 && self.scope == RebuildScope::All).then(|| left / rate),
        }
    }
}

pub(super) struct Batch {
    pub(super) position: CommitPosition,
    pub(super) read: i64,
    pub(super) applied: u64,
}

pub(super) async fn replay_batch(
    conn: &mut PgConnection,
    target: &Target<'_>,
    after: CommitPosition,
    batch_size: i64,
) -> Result<Batch, ProjectionError> {
    let events = committed_after(&mut *conn, after, target.scope.tenant(), batch_size).await?;
    let position = events.last().map_or(after, |(position, _)| *position);
    let read = events.len() as i64;
    let events: Vec<StoredEvent> = events.into_iter().map(|(_, event)| event).collect();
    let search_path = target.search_path();
    let applied =
        checkpoint::apply_batch(conn, &[target.projection], &events, &search_path).await?;
    Ok(Batch {
        position,
        read,
        applied,
    })
}
