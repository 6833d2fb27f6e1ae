//! Step 2's writer: a read model's events folded in memory a batch at a time and written into
//! the rebuild schema in bulk.
//!
//! The live projector must assume any row may exist and any checkpoint may be taken by another
//! worker. A replay into its own schema knows better, and that is where its speed comes from:
//! - the checkpoints are its own: held in memory (read back once when a stopped rebuild
//!   resumes), so skipping and gap detection cost no statement, and written per batch in
//!   bulk: new streams copied in, the others advanced in one statement;
//! - a stream without a checkpoint has no rows yet: its rows are copied in (`COPY`), never
//!   loaded or upserted;
//! - the entities of the last batch are kept as written, so a stream that continues in the next
//!   batch is not loaded back; only the others (streams last seen further back) are, in one
//!   statement per table, and their changes upserted as the live projector would.
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

use crate::copy_text::copy_rows;
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

    /// Applies `events` (in commit order) to the rebuild schema's tables and checkpoints inside
    /// the caller's transaction, with `search_path` (the rebuild schema first) already set;
    /// returns how many it applied.
    async fn apply(
        &mut self,
        conn: &mut PgConnection,
        events: &[StoredEvent],
        search_path: &str,
    ) -> Result<u64, ProjectionError>;
}

/// The [`Replayer`] of read model `R`.
pub(crate) struct Folder<R: ReadModel> {
    /// Last sequence applied per stream (aggregate id), as the schema holds it.
    checkpoints: HashMap<String, i64>,
    /// The entities the last batch wrote, as it wrote them.
    retained: HashMap<Uuid, R::Entity>,
    read_model: PhantomData<R>,
}

impl<R: ReadModel> Folder<R> {
    pub(crate) fn new() -> Self {
        Self {
            checkpoints: HashMap::new(),
            retained: HashMap::new(),
            read_model: PhantomData,
        }
    }
}

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
        Ok(())
    }

    async fn apply(
        &mut self,
        conn: &mut PgConnection,
        events: &[StoredEvent],
        search_path: &str,
    ) -> Result<u64, ProjectionError> {
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
        let mut changed = Changes::default();
        for (id, rows) in &after {
            match before.get(id) {
                Some(stored) => rows.changes(stored, &mut changed),
                None => changed.insert(rows),
            }
        }
        let folded = started.elapsed();
        changed.write(conn, R::Entity::TABLES).await?;
        let written = started.elapsed();
        self.write_checkpoints(conn, &plan.before).await?;
        tracing::debug!(
            events = events.len(),
            loaded_entities = before.len(),
            ?decoded,
            ?loaded,
            ?folded,
            ?written,
            checkpointed = ?started.elapsed(),
            "batch replayed"
        );
        self.retained = after;
        Ok(applied)
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
                Some(rows) => {
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

    /// The checkpoints the batch moved: new streams copied in, the others advanced in one
    /// statement.
    async fn write_checkpoints(
        &self,
        conn: &mut PgConnection,
        before: &HashMap<String, i64>,
    ) -> Result<(), sqlx::Error> {
        let mut new = Vec::new();
        let (mut ids, mut sequences) = (Vec::new(), Vec::new());
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
                ids.push(id.as_str());
                sequences.push(now);
            }
        }
        copy_rows(conn, "projection_checkpoints", &new).await?;
        if ids.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "update projection_checkpoints c set last_sequence = k.s, updated_at = now() \
               from unnest($3::text[], $4::bigint[]) as k(i, s) \
              where c.projection = $1 and c.aggregate_type = $2 and c.aggregate_id = k.i",
        )
        .bind(R::NAME)
        .bind(R::Aggregate::TYPE)
        .bind(&ids)
        .bind(&sequences)
        .execute(conn)
        .await?;
        Ok(())
    }
}
