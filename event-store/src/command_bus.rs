//! Runs a command against an aggregate: take its state (from the stream cache), check tenant and
//! expected version, let the aggregate decide, and append the events with whatever must commit
//! alongside them, in one transaction. We do not use cqrs-es's `CqrsFramework` or postgres-es's
//! repository: the framework hides the stream's version and owner, and the repository commits
//! in a transaction of its own that an `Idempotency-Key` receipt cannot join.
use std::sync::Arc;

use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use sqlx::PgPool;
use tokio::sync::Notify;

use crate::collection::BusAggregate;
use crate::facts::{PolicyCache, StoreFacts};
use crate::streams::{AlongsideEvents, AppendError, Folded, Streams, DEFAULT_CACHE_WEIGHT};
use crate::{EventMetadata, StoreError};
use aggregates::account::{Account, AccountCommand};
use aggregates::approval::{Approval, ApprovalCommand};
use aggregates::contract::{Contract, ContractCommand};
use aggregates::quote::{Quote, QuoteCommand};
use aggregates::tenant::{Tenant, TenantCommand};
use aggregates::user::{User, UserCommand};
use aggregates::{Command, CommandSet, DomainError};

const MAX_ATTEMPTS: u32 = 10;

pub struct AggregateStore<A: Aggregate> {
    streams: Arc<Streams<A>>,
    services: A::Services,
    /// Signalled after every commit, so a relay in the same process publishes at once.
    committed: Arc<Notify>,
}

/// A command's name, for the metrics: the variant of the aggregate's command enum.
pub trait CommandName {
    fn command_name(&self) -> &'static str;
}

impl<C: CommandSet> CommandName for Command<C> {
    fn command_name(&self) -> &'static str {
        self.body.name()
    }
}

/// The `outcome` label of `b2b_commands_total`: a few fixed values, never an error's text.
fn outcome_label(outcome: &Result<u64, StoreError>) -> &'static str {
    match outcome {
        Ok(_) => "ok",
        Err(StoreError::Rejected(DomainError::Forbidden(_))) => "forbidden",
        Err(StoreError::Rejected(DomainError::LookupFailed(_))) => "failed",
        Err(StoreError::Rejected(_)) => "rejected",
        Err(StoreError::NotFound(_)) => "not_found",
        Err(StoreError::VersionMismatch { .. }) => "version_mismatch",
        Err(StoreError::KeyTaken) => "key_taken",
        Err(StoreError::Contended(_)) => "contended",
        Err(_) => "failed",
    }
}

impl<A> AggregateStore<A>
where
    A: Aggregate<Error = DomainError, Event: aggregates::EventSchema>
        + aggregates::PersonalData
        + Clone
        + 'static,
    A::Command: Clone + CommandName,
{
    pub fn new(streams: Arc<Streams<A>>, services: A::Services, committed: Arc<Notify>) -> Self {
        Self {
            streams,
            services,
            committed,
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
        let alongside = AlongsideEvents::default();
        self.execute_with(
            aggregate_id,
            command,
            expected_version,
            metadata,
            &alongside,
        )
        .await
    }

    /// As [`execute`](Self::execute), committing `alongside` in the events' transaction. A
    /// decision taken on cached state is trusted only once its append commits (the append
    /// names the version it decided on); a refusal, a no-op or a version mismatch is checked
    /// against the stream's newest events first.
    pub async fn execute_with(
        &self,
        aggregate_id: &str,
        command: A::Command,
        expected_version: Option<u64>,
        metadata: &EventMetadata,
        alongside: &AlongsideEvents<'_>,
    ) -> Result<u64, StoreError> {
        let name = command.command_name();
        let outcome = self
            .run(aggregate_id, command, expected_version, metadata, alongside)
            .await;
        metrics::counter!(
            "b2b_commands_total",
            "aggregate_type" => A::TYPE,
            "command" => name,
            "outcome" => outcome_label(&outcome),
        )
        .increment(1);
        outcome
    }

    async fn run(
        &self,
        aggregate_id: &str,
        command: A::Command,
        expected_version: Option<u64>,
        metadata: &EventMetadata,
        alongside: &AlongsideEvents<'_>,
    ) -> Result<u64, StoreError> {
        let tenant = metadata.tenant_id;
        let _turn = self.streams.turn(aggregate_id).await;
        let mut state = self.streams.cached(aggregate_id, tenant).await?;
        let mut fresh = false;
        for attempt in 0..MAX_ATTEMPTS {
            let folded = state.clone().for_tenant(tenant)?;
            let outcome = match expected_version.filter(|e| *e != folded.version) {
                Some(expected) => Err(StoreError::VersionMismatch {
                    expected,
                    actual: folded.version,
                }),
                None => self.decide(folded, command.clone(), tenant).await,
            };
            let (decided, events) = match outcome {
                Err(StoreError::NotFound(kind)) => return Err(StoreError::NotFound(kind)),
                Ok((decided, events)) if !events.is_empty() => (decided, events),
                // Refused, mismatched or nothing to do: on fresh state that is the answer.
                other if fresh => return self.settle_without_events(other, alongside).await,
                other => {
                    let before = state.version;
                    state = self.streams.refresh(aggregate_id, state, tenant).await?;
                    fresh = true;
                    if state.version == before {
                        return self.settle_without_events(other, alongside).await;
                    }
                    continue;
                }
            };
            let appended = events.len() as u64;
            match self
                .streams
                .append(aggregate_id, &decided, events, metadata, alongside)
                .await
            {
                Ok(()) => {
                    self.committed.notify_one();
                    metrics::counter!("b2b_events_appended_total", "aggregate_type" => A::TYPE)
                        .increment(appended);
                    return Ok(decided.version);
                }
                Err(AppendError::Conflict) => {
                    let before = state.version;
                    state = self.streams.refresh(aggregate_id, state, tenant).await?;
                    // The stream holds events this tenant cannot see: another tenant's, so to
                    // this one it does not exist.
                    if state.version == before {
                        return Err(StoreError::NotFound(A::TYPE));
                    }
                    if fresh {
                        backoff(attempt).await;
                    }
                    fresh = true;
                }
                Err(AppendError::KeyTaken) => return Err(StoreError::KeyTaken),
                Err(AppendError::Rejected(rule)) => return Err(StoreError::Rejected(rule)),
                Err(AppendError::Storage(error)) => return Err(StoreError::Storage(error)),
            }
        }
        Err(StoreError::Contended(MAX_ATTEMPTS))
    }

    async fn decide(
        &self,
        mut folded: Folded<A>,
        command: A::Command,
        tenant: uuid::Uuid,
    ) -> Result<(Folded<A>, Vec<A::Event>), StoreError> {
        let sink = EventSink::default();
        folded
            .aggregate
            .handle(command, &self.services, &sink)
            .await?;
        let events = sink.collect().await;
        folded.version += events.len() as u64;
        if !events.is_empty() {
            folded.owner.get_or_insert(tenant);
        }
        Ok((folded, events))
    }

    /// A command that appends nothing still answers its `Idempotency-Key` with its version.
    async fn settle_without_events(
        &self,
        outcome: Result<(Folded<A>, Vec<A::Event>), StoreError>,
        alongside: &AlongsideEvents<'_>,
    ) -> Result<u64, StoreError> {
        let (decided, _) = outcome?;
        if let Some(receipt) = alongside.receipt {
            receipt
                .record_alone(self.streams.pool(), decided.version)
                .await
                .map_err(|e| match AppendError::from(e) {
                    AppendError::KeyTaken => StoreError::KeyTaken,
                    AppendError::Rejected(rule) => StoreError::Rejected(rule),
                    other => StoreError::Storage(other.to_string()),
                })?;
        }
        Ok(decided.version)
    }
}

/// A random pause that grows with each attempt, so writers that collided do not collide again
/// in lockstep.
async fn backoff(attempt: u32) {
    let ceiling_ms = 2 + 4 * u64::from(attempt);
    let pause = rand::random::<u64>() % ceiling_ms;
    tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
}

/// How a process's command bus caches.
#[derive(Debug, Clone, Copy)]
pub struct BusOptions {
    /// Per aggregate type: how many folded events the stream cache may hold.
    pub cache_weight: u64,
}

impl Default for BusOptions {
    fn default() -> Self {
        Self {
            cache_weight: DEFAULT_CACHE_WEIGHT,
        }
    }
}

/// One store per aggregate, sharing the fact lookups and the stream caches: what the command
/// API, process managers and timers send commands through. One per process, so that all of
/// them share its caches.
pub struct CommandBus {
    accounts: AggregateStore<Account>,
    users: AggregateStore<User>,
    quotes: AggregateStore<Quote>,
    approvals: AggregateStore<Approval>,
    contracts: AggregateStore<Contract>,
    tenants: AggregateStore<Tenant>,
    committed: Arc<Notify>,
    policies: Arc<PolicyCache>,
}

impl CommandBus {
    pub fn new(pool: PgPool) -> Self {
        Self::with_options(pool, BusOptions::default())
    }

    pub fn with_options(pool: PgPool, options: BusOptions) -> Self {
        let weight = options.cache_weight;
        let committed = Arc::new(Notify::new());
        let accounts = Arc::new(Streams::new(pool.clone(), weight));
        let users = Arc::new(Streams::new(pool.clone(), weight));
        let policies = Arc::new(PolicyCache::new(pool.clone()));
        let facts = Arc::new(StoreFacts::new(
            accounts.clone(),
            users.clone(),
            policies.clone(),
        ));
        Self {
            accounts: AggregateStore::new(accounts, facts.clone() as _, committed.clone()),
            users: AggregateStore::new(users, facts.clone() as _, committed.clone()),
            quotes: AggregateStore::new(
                Arc::new(Streams::new(pool.clone(), weight)),
                facts.clone() as _,
                committed.clone(),
            ),
            approvals: AggregateStore::new(
                Arc::new(Streams::new(pool.clone(), weight)),
                facts.clone() as _,
                committed.clone(),
            ),
            contracts: AggregateStore::new(
                Arc::new(Streams::new(pool.clone(), weight)),
                facts as _,
                committed.clone(),
            ),
            tenants: AggregateStore::new(
                Arc::new(Streams::new(pool, weight)),
                (),
                committed.clone(),
            ),
            committed,
            policies,
        }
    }

    /// The store of aggregate `A`: `bus.store::<Quote>().execute(...)`.
    pub fn store<A: BusAggregate>(&self) -> &AggregateStore<A> {
        A::store(self)
    }

    /// Signalled after every commit of this bus.
    pub fn committed(&self) -> Arc<Notify> {
        self.committed.clone()
    }

    /// The tenant policy cache, for the invalidation listener.
    pub fn policies(&self) -> Arc<PolicyCache> {
        self.policies.clone()
    }
}

impl BusAggregate for Account {
    type Body = AccountCommand;

    fn store(bus: &CommandBus) -> &AggregateStore<Self> {
        &bus.accounts
    }
}

impl BusAggregate for User {
    type Body = UserCommand;

    fn store(bus: &CommandBus) -> &AggregateStore<Self> {
        &bus.users
    }
}

impl BusAggregate for Quote {
    type Body = QuoteCommand;

    fn store(bus: &CommandBus) -> &AggregateStore<Self> {
        &bus.quotes
    }
}

impl BusAggregate for Approval {
    type Body = ApprovalCommand;

    fn store(bus: &CommandBus) -> &AggregateStore<Self> {
        &bus.approvals
    }
}

impl BusAggregate for Contract {
    type Body = ContractCommand;

    fn store(bus: &CommandBus) -> &AggregateStore<Self> {
        &bus.contracts
    }
}

impl BusAggregate for Tenant {
    type Body = TenantCommand;

    fn store(bus: &CommandBus) -> &AggregateStore<Self> {
        &bus.tenants
    }
}
