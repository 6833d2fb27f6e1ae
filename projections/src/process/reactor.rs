//! What every process manager is, and the one [`Projection`] they all run as.
use async_trait::async_trait;
use event_store::StoredEvent;
use sqlx::PgConnection;

use crate::stamp::{revealed, Keys};
use crate::{Projection, ProjectionError};

/// A handler that reacts to some events with commands (or, for the timer scheduling, rows of
/// its own): it declares no tables and is never rebuilt, since its side effects would run
/// again. Its consumer group is bound only to the events it lists.
#[async_trait]
pub trait Reactor: Send + Sync + 'static {
    /// Stable name: the checkpoint key and the actor its commands are sent as.
    const NAME: &'static str;
    /// The events it acts on: `(aggregate type, event type)`.
    const SUBSCRIBES: &'static [(&'static str, &'static str)];

    /// Reacts to one event (any other event of a subscribed aggregate type, read from the store
    /// by a catch-up, is passed too and must be ignored).
    async fn react(
        &self,
        conn: &mut PgConnection,
        event: &StoredEvent,
    ) -> Result<(), ProjectionError>;
}

/// A [`Reactor`] run by the consumer.
pub struct Reacting<R>(pub R);

#[async_trait]
impl<R: Reactor> Projection for Reacting<R> {
    fn name(&self) -> &'static str {
        R::NAME
    }

    fn handles(&self, aggregate_type: &str) -> bool {
        R::SUBSCRIBES.iter().any(|(t, _)| *t == aggregate_type)
    }

    fn routing_keys(&self) -> Vec<String> {
        routing_keys(R::SUBSCRIBES)
    }

    async fn apply_events(
        &self,
        conn: &mut PgConnection,
        events: &[&StoredEvent],
    ) -> Result<(), ProjectionError> {
        for event in revealed(conn, events, Keys::Released).await? {
            self.0.react(conn, &event).await?;
        }
        Ok(())
    }
}

/// Routing keys for `(aggregate type, event type)` pairs.
pub(crate) fn routing_keys(subscribes: &[(&str, &str)]) -> Vec<String> {
    subscribes
        .iter()
        .map(|(aggregate_type, event_type)| format!("{aggregate_type}.{event_type}"))
        .collect()
}
