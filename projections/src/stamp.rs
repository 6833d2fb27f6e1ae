//! What every read model takes from an event besides its payload: which entity, the stream
//! version, when and by whom; and the payload decoded.
use std::borrow::Cow;

use aggregates::EventSchema;
use chrono::{DateTime, Utc};
use event_store::{personal, StoredEvent};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::ProjectionError;

/// The entity an event is about and the stream version a row reflects after applying it.
pub(crate) struct Stamp {
    pub id: Uuid,
    pub version: i64,
    pub tenant_id: Uuid,
    pub at: DateTime<Utc>,
    /// Events our own processes and timers cause carry no user.
    pub by: Option<Uuid>,
    /// `by` when a person acted, not an API key (whose id `by` then is).
    pub person: Option<Uuid>,
}

impl Stamp {
    pub fn of(event: &StoredEvent) -> Result<Self, ProjectionError> {
        let id = event
            .aggregate_id
            .parse()
            .map_err(|_| ProjectionError::inconsistent(event, "an aggregate id must be a UUID"))?;
        Ok(Self {
            id,
            version: event.sequence,
            tenant_id: event.tenant_id,
            at: event.recorded_at,
            by: event.meta_uuid("user_id"),
            person: event
                .meta_uuid("user_id")
                .filter(|_| event.meta("api_key_id").is_none()),
        })
    }
}

/// How long a reveal keeps the keys it used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Keys {
    /// Locked until the caller's transaction ends, for one that writes what it reveals (a read
    /// model): a forgetting then waits for those rows, and the erasure after it finds them.
    HeldToCommit,
    /// Not locked, for one that writes none of it (a process manager, whose transaction may
    /// also wait on the commands it sends).
    Released,
}

/// The events with their personal data revealed (`event_store::personal`): plain text, or the
/// erased marker once the subject is forgotten. Only those holding sealed fields are copied,
/// and only they cost a query (one for all).
pub(crate) async fn revealed<'e>(
    conn: &mut PgConnection,
    events: &[&'e StoredEvent],
    keys: Keys,
) -> Result<Vec<Cow<'e, StoredEvent>>, ProjectionError> {
    let mut events: Vec<Cow<'e, StoredEvent>> = events.iter().map(|e| Cow::Borrowed(*e)).collect();
    let payloads = events
        .iter_mut()
        .filter(|e| personal::holds_sealed(&e.payload))
        .map(|e| {
            let event = e.to_mut();
            (event.tenant_id, &mut event.payload)
        })
        .collect();
    match keys {
        Keys::HeldToCommit => personal::reveal_holding_keys(conn, payloads).await?,
        Keys::Released => personal::reveal(conn, payloads).await?,
    }
    Ok(events)
}

/// The payload as `E`, through the store's one decode point (older versions upcast, the type
/// checked against the stored one). A payload `E` cannot read is a poison message.
pub(crate) fn decode<E: EventSchema>(event: &StoredEvent) -> Result<E, ProjectionError> {
    event_store::decode_stored(event).map_err(|error| ProjectionError::UnknownEvent {
        aggregate_type: event.aggregate_type.clone(),
        event_type: event.event_type.clone(),
        reason: error.to_string(),
    })
}
