//! The event store: postgres-es wiring, running commands against aggregates, reading history in
//! commit order, and the outbox relay that publishes every stored event to RabbitMQ.
#![forbid(unsafe_code)]

pub mod audit;
pub mod clock;
pub mod collection;
pub mod command_bus;
pub mod db;
mod error;
mod facts;
pub mod history;
pub mod idempotency;
pub mod invalidation;
pub mod metadata;
pub mod relay;
pub mod streams;
pub mod topology;

pub use clock::Clock;
pub use collection::{BusAggregate, Collection, PerAggregate, UnknownCollection};
pub use command_bus::{AggregateStore, BusOptions, CommandBus};
pub use error::StoreError;
pub use facts::PolicyCache;
pub use history::StoredEvent;
pub use idempotency::{Earlier, Receipt};
pub use invalidation::{Invalidation, Invalidations};
pub use metadata::EventMetadata;
pub use streams::{AlongsideEvents, Credential};
pub use topology::Topology;
