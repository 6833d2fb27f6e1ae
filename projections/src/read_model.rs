//! What every read model is, and the one [`Projection`] they all run as.
use async_trait::async_trait;
use cqrs_es::Aggregate;
use event_store::StoredEvent;
use sqlx::PgConnection;

use crate::stamp::{decode, Stamp};
use crate::{Projection, ProjectionError};

/// The event type a read model of `R`'s aggregate decodes.
pub(crate) type EventOf<R> = <<R as ReadModel>::Aggregate as Aggregate>::Event;

/// A table maintained from one aggregate's events: **replayable** (no side effects beyond its
/// tables, so a rebuild may run it again from the first event) and declaring those tables (so
/// the rebuild knows what to copy and swap). It sees each event once, in stream order, already
/// decoded and stamped; the decoding, the checkpoints and the transaction are the consumer's.
#[async_trait]
pub(crate) trait ReadModel: Send + Sync + 'static {
    /// Stable name: the checkpoint key and `projections rebuild <name>`; renaming it replays
    /// everything.
    const NAME: &'static str;
    /// The tables it writes, parents before children, by unqualified name (see
    /// [`crate::rebuild`]).
    const TABLES: &'static [&'static str];
    /// Whose events feed it.
    type Aggregate: Aggregate;

    /// The stored payload as the current version of the event (an upcast goes here).
    fn decode(event: &StoredEvent) -> Result<EventOf<Self>, ProjectionError> {
        decode(event)
    }

    /// Applies one event inside the caller's transaction (tenant and `search_path` set). An
    /// event it cannot apply is an error, never a silent skip: the model would stay wrong.
    async fn apply_change(
        &self,
        conn: &mut PgConnection,
        stamp: &Stamp,
        event: &StoredEvent,
        change: EventOf<Self>,
    ) -> Result<(), ProjectionError>;
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
        R::TABLES
    }

    fn routing_keys(&self) -> Vec<String> {
        vec![format!("{}.*", R::Aggregate::TYPE)]
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        event: &StoredEvent,
    ) -> Result<(), ProjectionError> {
        let stamp = Stamp::of(event)?;
        let change = R::decode(event)?;
        self.apply_change(conn, &stamp, event, change).await
    }
}
