//! Step 2's writer: a read model's events folded in memory a batch at a time and written into
//! the rebuild schema in bulk.
//!
//! The live projector must assume any row may exist and any checkpoint may be taken by another
//! worker. A replay into its own schema knows better, and that is where its speed comes from:
//! - the checkpoints are its own: held in memory (read back once when a stopped rebuild
//!   resumes), so skipping and gap detection cost no statement, and written per batch in
//!   bulk: new streams copied in, the others advanced in one statement;
//! - a stream without a checkpoint has no rows yet: its rows are copied in (`COPY`), never
//!   loaded or upserted; a continuing stream's rows of new keys (a quote's new lines) are
//!   copied in too, and only its changed rows upserted;
//! - the entities of recent batches are kept as written (those of the last batch always, older
//!   ones up to [`RETAINED_ENTITIES`]), so a stream that continues a few batches later is not
//!   loaded back; only the others (streams last seen further back) are, in one statement per
//!   table, and their changes upserted as the live projector would.
//!
//! Folding is the read model's own [`ReadModel::fold`], the very code the live projector runs.
use std::borrow::Cow;
use std::collections::HashMap;
use std::marker::PhantomData;

use async_trait::async_trait;
use cqrs_es::Aggregate;
use event_store::StoredEvent;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::copy_text::CopyIn;
use crate::read_model::{Inconsistent, ReadModel};
use crate::rows::{Changes, Entity};
use crate::stamp::{decode, Stamp};
use crate::{checkpoint, rebuild, ProjectionError};

/// A read model's replay into a rebuild schema, with what it remembers between batches.
#[async_trait]
pub trait Replayer: Send {
    /// The aggregate types whose events it folds: the only ones the replay reads.
    fn aggregate_types(&self) -> Vec<&'static str>;

    /// Reads the checkpoints `schema` holds already (those of a stopped rebuild).
    async fn resume(
        &mut self,
        conn: &mut PgConnection,
        schema: &str,
    ) -> Result<(), ProjectionError>;

    /// Folds `events` (in commit order) into what they change, writing nothing: `conn`, with
    /// `search_path` (the rebuild schema first) already set, only reads the rows of entities it
    /// does not hold and the events missing after a gap. Every batch folded before this one
    /// must have been written, except the last (its entities are held in memory): that is
    /// what lets the replay write one batch while it folds the next.
    async fn fold(
        &mut self,
        conn: &mut PgConnection,
        events: &[StoredEvent],
        search_path: &str,
    ) -> Result<Folded, ProjectionError>;
}

/// A batch folded: the rows it changes and the checkpoints it moves, to be written in one
/// transaction by [`Folded::write`].
pub struct Folded {
    changes: Changes,
    tables: &'static [&'static str],
    checkpoints: CheckpointMoves,
    /// Whether the tables have grown enough to be analyzed again (see
    /// [`Folder::analyze_as_tables_grow`]).
    analyze: bool,
    applied: u64,
}

/// The checkpoints a batch moved: new streams copied in, the others advanced in one statement.
struct CheckpointMoves {
    projection: &'static str,
    aggregate_type: &'static str,
    /// New streams' checkpoints, encoded for `COPY`.
    new: Option<CopyIn>,
    ids: Vec<String>,
    sequences: Vec<i64>,
}

/// The [`Replayer`] of read model `R`.
pub(crate) struct Folder<R: ReadModel> {
    /// Last sequence applied per stream (aggregate id), as the schema holds it.
    checkpoints: HashMap<String, i64>,
    /// Entities recent batches wrote, as they wrote them, with the number of the batch that
    /// last did: the last batch's always, older ones while there are few enough.
    retained: HashMap<Uuid, (u64, R::Entity)>,
    /// Batches folded so far.
    batches: u64,
    /// Streams checkpointed when the schema's tables were last analyzed.
    analyzed_at: usize,
    read_model: PhantomData<R>,
}

impl<R: ReadModel> Folder<R> {
    pub(crate) fn new() -> Self {
        Self {
            checkpoints: HashMap::new(),
            retained: HashMap::new(),
            batches: 0,
            analyzed_at: 0,
            read_model: PhantomData,
        }
    }
}

/// Entities kept in memory between batches beyond the last batch's: a stream that continues a
/// few batches later is then not loaded back. A bound on memory (a quote with ten lines is
/// about two kilobytes).
const RETAINED_ENTITIES: usize = 20_000;

/// Streams from which the rebuild schema's tables are worth analyzing.
const ANALYZE_FROM_STREAMS: usize = 500;

/// A batch's events to apply, and each touched stream's checkpoint before the batch.
struct Plan<'e> {
    events: Vec<Cow<'e, StoredEvent>>,
    before: HashMap<String, i64>,
}

#[async_trait]
impl<R: ReadModel> Replayer for Folder<R> {
    fn aggregate_types(&self) -> Vec<&'static str> {
        vec![R::Aggregate::TYPE]
    }

    async fn resume(
        &mut self,
        conn: &mut PgConnection,
        schema: &str,
    ) -> Result<(), ProjectionError> {
        let rows: Vec<(String, i64)> = sqlx::query_as(&format!(
            "select aggregate_id, last_sequence from {schema}.projection_checkpoints \
             where projection = $1 and aggregate_type = $2"
        ))
        .bind(R::NAME)
        .bind(R::Aggregate::TYPE)
        .fetch_all(conn)
        .await?;
        self.checkpoints = rows.into_iter().collect();
        self.retained.clear();
        self.analyzed_at = 0;
        Ok(())
    }

    async fn fold(
        &mut self,
        conn: &mut PgConnection,
        events: &[StoredEvent],
        search_path: &str,
    ) -> Result<Folded, ProjectionError> {
        let started = std::time::Instant::now();
        let plan = self.plan(conn, events, search_path).await?;
        let applied = plan.events.len() as u64;
        let changes = plan
            .events
            .iter()
            .map(|event| Ok((event.as_ref(), Stamp::of(event)?, decode(event)?)))
            .collect::<Result<Vec<_>, ProjectionError>>()?;
        let decoded = started.elapsed();
        let before = self.stored(conn, &plan, &changes).await?;
        let loaded = started.elapsed();
        let mut after = before.clone();
        for (event, stamp, change) in changes {
            let rows = after.entry(stamp.id).or_default();
            R::fold(rows, &stamp, change)
                .map_err(|Inconsistent(detail)| ProjectionError::inconsistent(event, detail))?;
        }
        let mut changed = Changes::copying_new_rows();
        let none = R::Entity::default();
        for (id, rows) in &after {
            rows.changes(before.get(id).unwrap_or(&none), &mut changed);
        }
        changed.encode_inserts();
        tracing::debug!(
            events = events.len(),
            loaded_entities = before.len(),
            ?decoded,
            ?loaded,
            folded = ?started.elapsed(),
            "batch folded"
        );
        self.retain(after);
        Ok(Folded {
            changes: changed,
            tables: R::Entity::TABLES,
            checkpoints: self.checkpoint_moves(&plan.before),
            analyze: self.analyze_as_tables_grow(),
            applied,
        })
    }
}

impl Folded {
    /// Writes the batch inside the caller's transaction, with `search_path` already set;
    /// returns how many events it applied.
    pub async fn write(self, conn: &mut PgConnection) -> Result<u64, ProjectionError> {
        let started = std::time::Instant::now();
        self.changes.write(conn, self.tables).await?;
        let written = started.elapsed();
        self.checkpoints.write(conn).await?;
        if self.analyze {
            let sql = format!("analyze projection_checkpoints, {}", self.tables.join(", "));
            sqlx::query(&sql).execute(&mut *conn).await?;
        }
        tracing::debug!(?written, checkpointed = ?started.elapsed(), "batch written");
        Ok(self.applied)
    }
}

impl CheckpointMoves {
    async fn write(self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        if let Some(new) = self.new {
            new.send(conn).await?;
        }
        if self.ids.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "update projection_checkpoints c set last_sequence = k.s, updated_at = now() \
               from unnest($3::text[], $4::bigint[]) as k(i, s) \
              where c.projection = $1 and c.aggregate_type = $2 and c.aggregate_id = k.i",
        )
        .bind(self.projection)
        .bind(self.aggregate_type)
        .bind(&self.ids)
        .bind(&self.sequences)
        .execute(conn)
        .await?;
        Ok(())
    }
}

impl<R: ReadModel> Folder<R> {
    /// Which events to apply, in order: an event already applied is skipped, one after a gap
    /// brings the missing events from the event store first (as in [`checkpoint::apply_batch`]).
    async fn plan<'e>(
        &mut self,
        conn: &mut PgConnection,
        events: &'e [StoredEvent],
        search_path: &str,
    ) -> Result<Plan<'e>, ProjectionError> {
        let mut plan = Plan {
            events: Vec::with_capacity(events.len()),
            before: HashMap::new(),
        };
        for event in events {
            let done = self
                .checkpoints
                .entry(event.aggregate_id.clone())
                .or_insert(0);
            plan.before
                .entry(event.aggregate_id.clone())
                .or_insert(*done);
            if event.sequence <= *done {
                continue;
            }
            if event.sequence - *done == 1 {
                plan.events.push(Cow::Borrowed(event));
            } else {
                // The store is read as the event's tenant.
                rebuild::enter(conn, event.tenant_id, search_path).await?;
                let mut missing = checkpoint::missing_events(conn, event, *done).await?;
                event_store::personal::reveal_events(&mut *conn, &mut missing).await?;
                plan.events.extend(missing.into_iter().map(Cow::Owned));
            }
            *done = event.sequence;
        }
        Ok(plan)
    }

    /// The stored rows of the entities the planned events change: those of the last batch as
    /// it left them, the others loaded. An entity whose stream had no checkpoint has no rows
    /// and is absent from the map.
    async fn stored(
        &mut self,
        conn: &mut PgConnection,
        plan: &Plan<'_>,
        changes: &[(&StoredEvent, Stamp, crate::read_model::EventOf<R>)],
    ) -> Result<HashMap<Uuid, R::Entity>, ProjectionError> {
        let mut stored = HashMap::new();
        let mut to_load = Vec::new();
        for (event, stamp, _) in changes {
            if plan.before[&event.aggregate_id] == 0 || stored.contains_key(&stamp.id) {
                continue;
            }
            match self.retained.remove(&stamp.id) {
                Some((_, rows)) => {
                    stored.insert(stamp.id, rows);
                }
                None => to_load.push(stamp.id),
            }
        }
        to_load.sort_unstable();
        to_load.dedup();
        if !to_load.is_empty() {
            stored.extend(R::Entity::load(conn, &to_load).await?);
            // An entity whose events left it without rows is still known to have none.
            for id in to_load {
                stored.entry(id).or_default();
            }
        }
        Ok(stored)
    }

    /// Keeps the batch's entities as folded; once more are held than [`RETAINED_ENTITIES`],
    /// only this batch's. Older ones may be dropped at any time: their batches have been
    /// written by the time they are needed again (see [`Replayer::fold`]).
    fn retain(&mut self, entities: HashMap<Uuid, R::Entity>) {
        self.batches += 1;
        let batch = self.batches;
        self.retained
            .extend(entities.into_iter().map(|(id, rows)| (id, (batch, rows))));
        if self.retained.len() > RETAINED_ENTITIES {
            self.retained.retain(|_, (last, _)| *last == batch);
        }
    }

    /// Whether to analyze the rebuild schema's tables with this batch: each time their streams
    /// have doubled. They start empty, and a statement prepared then keeps a plan for empty
    /// tables (the checkpoints' update scanned every checkpoint for the few it changes) until
    /// statistics change.
    fn analyze_as_tables_grow(&mut self) -> bool {
        let streams = self.checkpoints.len();
        if streams < 2 * self.analyzed_at.max(ANALYZE_FROM_STREAMS) {
            return false;
        }
        self.analyzed_at = streams;
        true
    }

    /// The checkpoints the batch moved: new streams to copy in, the others to advance.
    fn checkpoint_moves(&self, before: &HashMap<String, i64>) -> CheckpointMoves {
        let mut new = Vec::new();
        let mut moves = CheckpointMoves {
            projection: R::NAME,
            aggregate_type: R::Aggregate::TYPE,
            new: None,
            ids: Vec::new(),
            sequences: Vec::new(),
        };
        for (id, was) in before {
            let now = self.checkpoints[id];
            if now == *was {
                continue;
            }
            if *was == 0 {
                new.push(serde_json::json!({
                    "projection": R::NAME,
                    "aggregate_type": R::Aggregate::TYPE,
                    "aggregate_id": id,
                    "last_sequence": now,
                }));
            } else {
                moves.ids.push(id.clone());
                moves.sequences.push(now);
            }
        }
        moves.new = CopyIn::encode("projection_checkpoints", &new);
        moves
    }
}
