use async_trait::async_trait;
use event_store::StoredEvent;
use sqlx::PgConnection;

use crate::rebuild::Replayer;
use crate::ProjectionError;

/// What the consumer runs for each event: a read model (every [`crate::read_model::ReadModel`]
/// is one, replayable, declaring its tables) or a reactor (a process manager: it issues
/// commands, declares no tables and is never rebuilt).
///
/// The projector guarantees each event reaches `apply_events` once per projection and in stream
/// order (see [`crate::checkpoint`]), so it may do non-idempotent things like incrementing a
/// counter. It runs after the append's commit, from RabbitMQ, never inside it.
#[async_trait]
pub trait Projection: Send + Sync {
    /// Stable name, used as the checkpoint key; renaming it replays everything.
    fn name(&self) -> &'static str;

    /// Whether events of this aggregate type feed this read model.
    fn handles(&self, aggregate_type: &str) -> bool;

    /// The routing keys (`<aggregate type>.<event type>`, `*` for either part) of the events it
    /// acts on. Its consumer group's queues are bound to its handlers' keys alone, so no other
    /// event costs it a delivery; the checkpoint's catch-up still reads the skipped ones from
    /// the store when a subscribed event arrives after them.
    fn routing_keys(&self) -> Vec<String>;

    /// The tables it writes, parents before children, by their unqualified names: it
    /// names them without a schema so that a rebuild can point the same SQL at copies of them
    /// (see [`crate::rebuild`]). Empty for handlers that must never be rebuilt (process
    /// managers: their side effects would run again).
    fn tables(&self) -> &'static [&'static str] {
        &[]
    }

    /// How a rebuild replays it in bulk (see [`crate::rebuild`]); `None` for handlers that
    /// must never be rebuilt.
    fn replayer(&self) -> Option<Box<dyn Replayer>> {
        None
    }

    /// Applies events of one tenant inside the caller's transaction, where that tenant and
    /// the `search_path` (the live `read` schema, or a rebuild's) are already set: each
    /// stream's events in order, each event once (the caller's checkpoints see to that). An
    /// event it cannot understand is an error, never a silent skip: skipping would leave the
    /// read model wrong for good.
    async fn apply_events(
        &self,
        conn: &mut PgConnection,
        events: &[&StoredEvent],
    ) -> Result<(), ProjectionError>;

    /// Applies one event, as [`Projection::apply_events`] does.
    async fn apply(
        &self,
        conn: &mut PgConnection,
        event: &StoredEvent,
    ) -> Result<(), ProjectionError> {
        self.apply_events(conn, &[event]).await
    }
}
