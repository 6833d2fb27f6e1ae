//! Runs a command against an aggregate: load its stream, check tenant and expected version, let
//! the aggregate decide, append. We drive cqrs-es's `PersistedEventStore` ourselves instead of
//! `CqrsFramework` because the framework hides the stream's version, its owning tenant and the
//! conflict we need to retry.
use cqrs_es::event_sink::EventSink;
use cqrs_es::persist::{EventStoreAggregateContext, PersistedEventStore};
use cqrs_es::{Aggregate, AggregateError, EventStore};
use postgres_es::PostgresEventRepository;
use sqlx::PgPool;

use crate::{EventMetadata, StoreError};
use aggregates::DomainError;

const MAX_ATTEMPTS: u32 = 10;

pub struct AggregateStore<A: Aggregate> {
    store: PersistedEventStore<PostgresEventRepository, A>,
    services: A::Services,
}

impl<A> AggregateStore<A>
where
    A: Aggregate<Error = DomainError>,
    A::Command: Clone,
{
    /// Event-store mode only: postgres-es's snapshot and aggregate-store modes apply each new
    /// event a second time after `EventSink::write` already did.
    pub fn new(pool: PgPool, services: A::Services) -> Self {
        let repo = PostgresEventRepository::new(pool);
        Self {
            store: PersistedEventStore::new_event_store(repo),
            services,
        }
    }

    /// Runs `command` and returns the aggregate's version afterwards. With `expected_version`
    /// the command runs only at that version; without it a concurrent writer's conflict is
    /// retried on fresh state.
    pub async fn execute(
        &self,
        aggregate_id: &str,
        command: A::Command,
        expected_version: Option<u64>,
        metadata: &EventMetadata,
    ) -> Result<u64, StoreError> {
        for attempt in 0..MAX_ATTEMPTS {
            let context = self.load(aggregate_id, metadata.tenant_id).await?;
            let version = context.current_sequence as u64;
            if let Some(expected) = expected_version.filter(|e| *e != version) {
                return Err(StoreError::VersionMismatch {
                    expected,
                    actual: version,
                });
            }
            match self
                .decide_and_append(context, command.clone(), metadata)
                .await
            {
                Err(StoreError::Contended(_)) if expected_version.is_none() => {
                    backoff(attempt).await
                }
                Err(StoreError::Contended(_)) => {
                    return Err(StoreError::VersionMismatch {
                        expected: version,
                        actual: version + 1,
                    })
                }
                other => return other,
            }
        }
        Err(StoreError::Contended(MAX_ATTEMPTS))
    }

    /// The current state, or `NotFound` when the stream belongs to another tenant.
    pub async fn load(
        &self,
        aggregate_id: &str,
        tenant_id: uuid::Uuid,
    ) -> Result<EventStoreAggregateContext<A>, StoreError> {
        load_stream(&self.store, aggregate_id, tenant_id).await
    }

    async fn decide_and_append(
        &self,
        mut context: EventStoreAggregateContext<A>,
        command: A::Command,
        metadata: &EventMetadata,
    ) -> Result<u64, StoreError> {
        let version = context.current_sequence as u64;
        let sink = EventSink::default();
        context
            .aggregate
            .handle(command, &self.services, &sink)
            .await?;
        let events = sink.collect().await;
        if events.is_empty() {
            return Ok(version);
        }
        let committed = self
            .store
            .commit(events, context, metadata.to_map())
            .await
            .map_err(|e| match e {
                AggregateError::AggregateConflict => StoreError::Contended(1),
                other => storage_error(other),
            })?;
        Ok(version + committed.len() as u64)
    }
}

/// A random pause that grows with each attempt, so writers that collided do not collide again
/// in lockstep.
async fn backoff(attempt: u32) {
    let ceiling_ms = 2 + 4 * u64::from(attempt);
    let pause = rand::random::<u64>() % ceiling_ms;
    tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
}

/// Folds a stream into its aggregate; a stream of another tenant is `NotFound`.
pub(crate) async fn load_stream<A>(
    store: &PersistedEventStore<PostgresEventRepository, A>,
    aggregate_id: &str,
    tenant_id: uuid::Uuid,
) -> Result<EventStoreAggregateContext<A>, StoreError>
where
    A: Aggregate<Error = DomainError>,
{
    let envelopes = store
        .load_events(aggregate_id)
        .await
        .map_err(storage_error)?;
    if let Some(first) = envelopes.first() {
        let owner = first.metadata.get("tenant_id").map(String::as_str);
        if owner != Some(tenant_id.to_string().as_str()) {
            return Err(StoreError::NotFound);
        }
    }
    let mut aggregate = A::default();
    let current_sequence = envelopes.last().map_or(0, |e| e.sequence);
    for envelope in envelopes {
        aggregate.apply(envelope.payload);
    }
    Ok(EventStoreAggregateContext {
        aggregate_id: aggregate_id.to_owned(),
        aggregate,
        current_sequence,
        current_snapshot: None,
    })
}

fn storage_error(error: AggregateError<DomainError>) -> StoreError {
    match error {
        AggregateError::UserError(domain) => StoreError::Rejected(domain),
        other => StoreError::Storage(other.to_string()),
    }
}

/// One store per aggregate, sharing the fact lookups: what the command API, process managers
/// and timers send commands through.
pub struct CommandBus {
    pub accounts: AggregateStore<aggregates::account::Account>,
    pub users: AggregateStore<aggregates::user::User>,
    pub quotes: AggregateStore<aggregates::quote::Quote>,
    pub approvals: AggregateStore<aggregates::approval::Approval>,
    pub contracts: AggregateStore<aggregates::contract::Contract>,
}

impl CommandBus {
    pub fn new(pool: PgPool) -> Self {
        let facts = std::sync::Arc::new(crate::facts::StoreFacts::new(pool.clone()));
        Self {
            accounts: AggregateStore::new(pool.clone(), ()),
            users: AggregateStore::new(pool.clone(), facts.clone() as _),
            quotes: AggregateStore::new(pool.clone(), facts.clone() as _),
            approvals: AggregateStore::new(pool.clone(), facts.clone() as _),
            contracts: AggregateStore::new(pool, facts as _),
        }
    }
}
