//! What every read model is, and the one [`Projection`] they all run as.
use std::collections::HashMap;

use aggregates::EventSchema;
use async_trait::async_trait;
use cqrs_es::Aggregate;
use event_store::StoredEvent;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::rebuild::{Folder, Replayer};
use crate::rows::{Changes, Entity};
use crate::stamp::{decode, revealed, Keys, Stamp};
use crate::{Projection, ProjectionError};

/// The event type a read model of `R`'s aggregate decodes.
pub(crate) type EventOf<R> = <<R as ReadModel>::Aggregate as Aggregate>::Event;

/// Why an event cannot be folded into the rows it names: the read model would diverge if it
/// carried on (an event before the one that creates its rows, or about a row that is not there).
#[derive(Debug)]
pub(crate) struct Inconsistent(pub &'static str);

/// Tables maintained from one aggregate's events, as a fold: **replayable** (no side effects
/// beyond its tables, so a rebuild may run it again from the first event) and declaring those
/// tables through its [`Entity`] (so the rebuild knows what to copy and swap). The consumer
/// loads the rows of a batch's aggregates, folds each event into them in stream order, already
/// decoded and stamped, and writes back what changed; decoding, checkpoints and the
/// transaction are the consumer's.
pub(crate) trait ReadModel: Send + Sync + 'static {
    /// Stable name: the checkpoint key and `projections rebuild <name>`; renaming it replays
    /// everything.
    const NAME: &'static str;
    /// Whose events feed it.
    type Aggregate: Aggregate<Event: EventSchema>;
    /// One aggregate's rows.
    type Entity: Entity;

    /// Folds one event into its aggregate's rows (empty before the aggregate's first event).
    fn fold(
        rows: &mut Self::Entity,
        stamp: &Stamp,
        change: EventOf<Self>,
    ) -> Result<(), Inconsistent>;
}

#[async_trait]
impl<R: ReadModel> Projection for R {
    fn name(&self) -> &'static str {
        R::NAME
    }

    fn handles(&self, aggregate_type: &str) -> bool {
        aggregate_type == R::Aggregate::TYPE
    }

    fn tables(&self) -> &'static [&'static str] {
        R::Entity::TABLES
    }

    fn routing_keys(&self) -> Vec<String> {
        vec![format!("{}.*", R::Aggregate::TYPE)]
    }

    fn replayer(&self) -> Option<Box<dyn Replayer>> {
        Some(Box::new(Folder::<Self>::new()))
    }

    async fn apply_events(
        &self,
        conn: &mut PgConnection,
        events: &[&StoredEvent],
    ) -> Result<(), ProjectionError> {
        let events = revealed(conn, events, Keys::HeldToCommit).await?;
        let changes = events
            .iter()
            .map(|event| Ok((event.as_ref(), Stamp::of(event)?, decode(event)?)))
            .collect::<Result<Vec<_>, ProjectionError>>()?;
        let mut ids: Vec<Uuid> = changes.iter().map(|(_, stamp, _)| stamp.id).collect();
        ids.sort_unstable();
        ids.dedup();
        let before = R::Entity::load(conn, &ids).await?;
        let mut after: HashMap<Uuid, R::Entity> = before.clone();
        for (event, stamp, change) in changes {
            let rows = after.entry(stamp.id).or_default();
            R::fold(rows, &stamp, change)
                .map_err(|Inconsistent(detail)| ProjectionError::inconsistent(event, detail))?;
        }
        let mut changed = Changes::default();
        let none = R::Entity::default();
        for (id, rows) in &after {
            rows.changes(before.get(id).unwrap_or(&none), &mut changed);
        }
        changed.write(conn, R::Entity::TABLES).await?;
        Ok(())
    }
}

/// The row an event changes, which an earlier event must have created.
pub(crate) fn existing<'r, T>(
    row: &'r mut Option<T>,
    missing: &'static str,
) -> Result<&'r mut T, Inconsistent> {
    row.as_mut().ok_or(Inconsistent(missing))
}
