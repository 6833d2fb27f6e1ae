//! How events stored under an older schema read today. Each aggregate's event enum lists the
//! steps (`Upcaster`) from every version it was ever stored at to the next; the store's one
//! decode point (`event_store::decode`) runs them before a payload becomes a domain event, for
//! the aggregates, read models, process managers and `asOf` alike.
use cqrs_es::DomainEvent;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// One step of an event type's schema: rewrites the event's body (the object under its type's
/// tag) stored at version `from` into version `to`.
#[derive(Debug, Clone, Copy)]
pub struct Upcaster {
    pub event_type: &'static str,
    pub from: &'static str,
    pub to: &'static str,
    pub rewrite: fn(&mut Value) -> Result<(), String>,
}

/// An aggregate's events as the store reads them back.
pub trait EventSchema: DomainEvent + DeserializeOwned {
    /// Every step between stored versions, in any order; a type without steps reads as stored.
    const UPCASTERS: &'static [Upcaster] = &[];
}
