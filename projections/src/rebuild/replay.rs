//! Step 2: the event store replayed in commit order into the rebuild schema, a batch per
//! transaction, each recording how far it got.
//!
//! One task reads (a single query, streamed, of the projection's aggregate types only) and
//! hands batches over a short channel; this one folds them through the read model's
//! [`super::Replayer`] and writes them. Three things overlap: Postgres reading batch N+2, this
//! process folding batch N+1, and Postgres writing batch N (folding needs none of N's rows:
//! the replayer holds the entities of the last batch it folded).
use std::time::Instant;

use event_store::history::{
    committed_after, committed_horizon, stream_committed_between, CommitPosition,
};
use event_store::StoredEvent;
use sqlx::pool::PoolConnection;
use sqlx::{Connection, PgConnection, PgPool, Postgres};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{Folded, RebuildProgress, RebuildScope, Replayer, Target};
use crate::checkpoint;
use crate::{Projection, ProjectionError};

/// Batches read ahead of the one being written.
const READ_AHEAD: usize = 2;

type Positioned = Vec<(CommitPosition, StoredEvent)>;

/// The replay of one rebuild.
pub(super) struct Replay<'a> {
    pub(super) projection: &'a dyn Projection,
    pub(super) scope: RebuildScope,
    pub(super) schema: &'a str,
    pub(super) batch_size: i64,
    pub(super) progress: &'a (dyn Fn(&RebuildProgress) + Sync),
}

impl Replay<'_> {
    /// Replays every event of the projection committed after `from` up to the horizon of when
    /// the replay starts into the rebuild schema, one transaction per batch, each also
    /// recording how far it got, and returns that horizon: what commits meanwhile is the
    /// swap's to catch up.
    pub(super) async fn run(
        &self,
        pool: &PgPool,
        (from, replayed_before): (CommitPosition, i64),
    ) -> Result<(CommitPosition, u64), ProjectionError> {
        let replayer = self
            .projection
            .replayer()
            .ok_or_else(|| ProjectionError::NotRebuildable(self.projection.name().to_owned()))?;
        let mut folding = Folding {
            conn: pool.acquire().await?,
            replayer,
        };
        folding
            .replayer
            .resume(&mut folding.conn, self.schema)
            .await?;
        let (sink, mut batches) = mpsc::channel(READ_AHEAD);
        let types = folding.replayer.aggregate_types();
        let reader = Reader::spawn(pool, from, self, types, sink);
        let (mut position, mut applied, mut read) = (from, 0u64, 0u64);
        let started = Instant::now();
        // Where the time goes: waiting for the reader, or folding and writing.
        let (mut waited, mut waiting) = (0.0, Instant::now());
        let mut folded: Option<Pending> = None;
        while let Some(batch) = batches.recv().await {
            waited += waiting.elapsed().as_secs_f64();
            let batch: Positioned = batch?;
            position = batch.last().map_or(position, |(at, _)| *at);
            read += batch.len() as u64;
            let events: Vec<StoredEvent> = batch.into_iter().map(|(_, event)| event).collect();
            // The batch folds on a task of its own while the one before it is written: neither
            // waits for the other (folding is long stretches of CPU with no await in them).
            let search_path = self.search_path();
            let fold = tokio::spawn(folding.fold(events, search_path));
            let written = self.write(pool, folded.take(), started).await;
            let next;
            (folding, next) = fold.await?;
            applied += written?;
            folded = Some(Pending {
                folded: next?,
                position,
                replayed: replayed_before + read as i64,
                read,
            });
            waiting = Instant::now();
        }
        applied += self.write(pool, folded, started).await?;
        let seconds = started.elapsed().as_secs_f64();
        tracing::info!(read, seconds, waited, "replay read and written");
        // The channel also closes when the reader dies: only its clean end means all was read.
        let horizon = reader.finished().await?;
        Ok((position.max(horizon), applied))
    }

    fn search_path(&self) -> String {
        format!("{}, public", self.schema)
    }

    /// Writes a folded batch and how far the replay got in one transaction, then reports
    /// progress; returns how many events it applied.
    async fn write(
        &self,
        pool: &PgPool,
        pending: Option<Pending>,
        started: Instant,
    ) -> Result<u64, ProjectionError> {
        let Some(pending) = pending else {
            return Ok(0);
        };
        let mut tx = pool.begin().await?;
        // Each batch commits with how far the replay got, so a batch whose commit a crash
        // kept from the disk is replayed again on resume: no need to wait for the flush.
        sqlx::query(
            "select set_config('search_path', $1, true), \
                    set_config('synchronous_commit', 'off', true)",
        )
        .bind(self.search_path())
        .execute(&mut *tx)
        .await?;
        let applied = pending.folded.write(&mut tx).await?;
        self.record(&mut tx, pending.position, pending.replayed)
            .await?;
        let total: i64 = sqlx::query_scalar("select coalesce(max(global_position), 0) from events")
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        let Pending {
            position,
            replayed,
            read,
            ..
        } = pending;
        (self.progress)(&self.progress_of(position, replayed, total, read, started));
        Ok(applied)
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

/// The replayer with the connection it reads through while it folds.
struct Folding {
    conn: PoolConnection<Postgres>,
    replayer: Box<dyn Replayer>,
}

impl Folding {
    /// Folds a batch in a read-only transaction of its own, its personal data revealed; gives
    /// itself back for the next batch.
    async fn fold(
        mut self,
        mut events: Vec<StoredEvent>,
        search_path: String,
    ) -> (Self, Result<Folded, ProjectionError>) {
        let folded = self.fold_in_transaction(&mut events, &search_path).await;
        (self, folded)
    }

    async fn fold_in_transaction(
        &mut self,
        events: &mut [StoredEvent],
        search_path: &str,
    ) -> Result<Folded, ProjectionError> {
        let mut tx = self.conn.begin().await?;
        event_store::personal::reveal_events(&mut *tx, events).await?;
        set_search_path(&mut tx, search_path).await?;
        let folded = self.replayer.fold(&mut tx, events, search_path).await?;
        tx.rollback().await?;
        Ok(folded)
    }
}

/// A batch folded, not yet written, and how far the replay will have got once it is.
struct Pending {
    folded: Folded,
    position: CommitPosition,
    replayed: i64,
    read: u64,
}

async fn set_search_path(conn: &mut PgConnection, search_path: &str) -> Result<(), sqlx::Error> {
    sqlx::query("select set_config('search_path', $1, true)")
        .bind(search_path)
        .execute(conn)
        .await?;
    Ok(())
}

/// The task streaming the events to replay, ending with the horizon it read up to; aborted when
/// dropped (a rebuild stopped part-way stops reading too).
struct Reader(Option<JoinHandle<CommitPosition>>);

impl Reader {
    fn spawn(
        pool: &PgPool,
        from: CommitPosition,
        replay: &Replay<'_>,
        aggregate_types: Vec<&'static str>,
        sink: mpsc::Sender<Result<Positioned, sqlx::Error>>,
    ) -> Self {
        let pool = pool.clone();
        let tenant = replay.scope.tenant();
        let chunk = usize::try_from(replay.batch_size.max(1)).unwrap_or(usize::MAX);
        Self(Some(tokio::spawn(async move {
            let mut conn = match pool.acquire().await {
                Ok(conn) => conn,
                Err(error) => {
                    let _ = sink.send(Err(error)).await;
                    return from;
                }
            };
            let up_to = match committed_horizon(&mut *conn).await {
                Ok(horizon) => horizon.unwrap_or_default().max(from),
                Err(error) => {
                    let _ = sink.send(Err(error)).await;
                    return from;
                }
            };
            let (range, types) = ((from, up_to), &aggregate_types);
            stream_committed_between(&mut conn, range, tenant, types, chunk, &sink).await;
            up_to
        })))
    }

    /// The horizon read up to, once the reader has handed on everything.
    async fn finished(mut self) -> Result<CommitPosition, ProjectionError> {
        let task = self.0.take().expect("finished once");
        Ok(task.await?)
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        if let Some(task) = &self.0 {
            task.abort();
        }
    }
}

pub(super) struct Batch {
    pub(super) position: CommitPosition,
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
    let events: Vec<StoredEvent> = events.into_iter().map(|(_, event)| event).collect();
    let search_path = target.search_path();
    let applied =
        checkpoint::apply_batch(conn, &[target.projection], &events, &search_path).await?;
    Ok(Batch { position, applied })
}
