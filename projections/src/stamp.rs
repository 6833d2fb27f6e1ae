//! What every read model takes from an event besides its payload: which entity, the stream
//! version, when and by whom; and the payload decoded and checked against its stored type.
use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use event_store::StoredEvent;
use serde::de::DeserializeOwned;
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
        })
    }
}

/// The payload as `E`, checked against the stored event type so a payload filed under the
/// wrong type cannot slip through. A payload `E` does not know is a poison message.
pub(crate) fn decode<E>(event: &StoredEvent) -> Result<E, ProjectionError>
where
    E: DomainEvent + DeserializeOwned,
{
    let decoded: E = serde_json::from_value(event.payload.clone()).map_err(|source| {
        ProjectionError::UnknownEvent {
            aggregate_type: event.aggregate_type.clone(),
            event_type: event.event_type.clone(),
            source,
        }
    })?;
    if decoded.event_type() != event.event_type {
        let detail = format!("payload is a {}", decoded.event_type());
        return Err(ProjectionError::inconsistent(event, detail));
    }
    Ok(decoded)
}
