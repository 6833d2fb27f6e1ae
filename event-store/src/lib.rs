//! The event store: running commands against aggregates and appending their events, reading
//! history in commit order, and the relay that publishes every committed event to RabbitMQ.
//!
//! What we kept of cqrs-es and postgres-es: cqrs-es's `Aggregate` (`handle` with its
//! `Services`, `apply`), `EventSink` and `DomainEvent` (event type and version), and its
//! `TestFramework` for the aggregates' tests; postgres-es's `events` table with its payload and
//! metadata formats, so its rows, and anything that reads them, stay as they were. We dropped
//! postgres-es's code: its repository commits in a transaction of its own, which a receipt
//! cannot join, and reads whole streams. The hash chain is computed by the insert trigger, not
//! here: its lookup of the predecessor is an index probe inside the same statement, not a round
//! trip, and the database must check the predecessor anyway.
#![forbid(unsafe_code)]

pub mod audit;
pub mod broker;
pub mod clock;
pub mod collection;
pub mod command_bus;
pub mod db;
pub mod decode;
mod error;
mod facts;
pub mod history;
pub mod idempotency;
pub mod invalidation;
pub mod metadata;
pub mod personal;
pub mod relay;
pub mod streams;
pub mod topology;
pub mod trace;

pub use clock::Clock;
pub use collection::{BusAggregate, Collection, PerAggregate, UnknownCollection};
pub use command_bus::{AggregateStore, BusOptions, CommandBus};
pub use decode::{decode, decode_stored};
pub use error::StoreError;
pub use facts::PolicyCache;
pub use history::StoredEvent;
pub use idempotency::{Earlier, Receipt};
pub use invalidation::{Invalidation, Invalidations};
pub use metadata::EventMetadata;
pub use streams::{AlongsideEvents, Credential};
pub use topology::Topology;
