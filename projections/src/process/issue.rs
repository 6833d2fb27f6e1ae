//! How process managers send commands: deterministic ids and metadata derived from the causing
//! event, and which refusals count as "already done".
use event_store::trace::TraceContext;
use std::sync::Arc;

use aggregates::{Actor, Command, DomainError, RuleCode};
use event_store::{BusAggregate, CommandBus, EventMetadata, StoreError, StoredEvent};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use sqlx::PgPool;
use uuid::Uuid;

use crate::ProjectionError;
use event_store::Clock;

/// Namespace of the public, recomputable event ids (`causation_id`): UUID v5 of the message id.
/// Never change it: auditors recompute these to link an effect to its cause.
pub const NAMESPACE: Uuid = Uuid::from_u128(0x6b2b_70c3_55e1_4c1e_9a0f_3d2c_8e41_b7a5);

/// Derives the ids of what processes create because of an event (an approval request, a
/// contract drafted from a quote, a timer), keyed with the deployment's secret
/// (`process_id_key`): the same event always gives the same id, so a redelivery addresses
/// the same aggregate, but no user can compute an id before the process uses it, so none can
/// occupy it first.
#[derive(Clone)]
pub struct ProcessIds {
    key: Arc<[u8]>,
}

impl ProcessIds {
    /// The deployment's key, created by the migrations.
    pub async fn load(pool: &PgPool) -> Result<Self, sqlx::Error> {
        let key: Vec<u8> = sqlx::query_scalar("select key from process_id_key")
            .fetch_one(pool)
            .await?;
        Ok(Self { key: key.into() })
    }

    /// The id of what a process creates because of an event: keyed over its message id
    /// (`{aggregate_type}:{aggregate_id}:{sequence}`).
    pub fn of_event(&self, event: &StoredEvent) -> Uuid {
        self.keyed(event.message_id().as_bytes())
    }

    /// An id derived from an event and a purpose, for when one event causes several things.
    pub fn derived(&self, event: &StoredEvent, purpose: &str) -> Uuid {
        self.keyed(format!("{}/{purpose}", event.message_id()).as_bytes())
    }

    /// The `causation_id` of every command an event causes: UUID v5 of its message id in the
    /// public [`NAMESPACE`], so an auditor can recompute it and link effect to cause. (Before
    /// ids were keyed, it was also the id of what the process created.)
    pub fn causation_of(event: &StoredEvent) -> Uuid {
        Uuid::new_v5(&NAMESPACE, event.message_id().as_bytes())
    }

    /// The correlation id of the causing event, so a whole chain (request → quote → approval
    /// → contract) shares one; an event without one starts its own chain.
    pub fn correlation_of(&self, event: &StoredEvent) -> Uuid {
        event
            .meta_uuid("correlation_id")
            .unwrap_or_else(|| Self::causation_of(event))
    }

    /// HMAC-SHA256, its first 16 bytes as a version 8 (custom) UUID.
    fn keyed(&self, message: &[u8]) -> Uuid {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key");
        mac.update(message);
        let digest = mac.finalize().into_bytes();
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        Uuid::new_v8(bytes)
    }
}

/// The refusal's rule code when `error` is a refusal listed in `settled`.
pub fn settled_refusal(error: &StoreError, settled: &[RuleCode]) -> Option<RuleCode> {
    match error {
        StoreError::Rejected(DomainError::RuleViolated { code, .. }) if settled.contains(code) => {
            Some(*code)
        }
        _ => None,
    }
}

/// Sends one process manager's commands, as `Actor::system(process)`.
#[derive(Clone)]
pub struct Issuer {
    bus: Arc<CommandBus>,
    pub ids: ProcessIds,
    clock: Arc<dyn Clock>,
    process: &'static str,
}

/// One command to send: where to, what, and the rule codes that mean "already done".
pub struct Order<'a, C> {
    pub aggregate_id: Uuid,
    pub name: &'static str,
    pub body: C,
    pub settled: &'a [RuleCode],
}

impl Issuer {
    pub fn new(
        bus: Arc<CommandBus>,
        ids: ProcessIds,
        clock: Arc<dyn Clock>,
        process: &'static str,
    ) -> Self {
        Self {
            bus,
            ids,
            clock,
            process,
        }
    }

    /// Runs the command caused by `cause`. Success, an idempotent no-op (the aggregate returns
    /// no events) and a listed refusal all count as done; anything else is an error, which
    /// the consumer retries (transient) or requeues until parked.
    #[tracing::instrument(
        name = "process.issue",
        skip_all,
        fields(
            process = self.process,
            command = order.name,
            tenant = %cause.tenant_id,
            aggregate_id = %order.aggregate_id,
            correlation_id = %self.ids.correlation_of(cause),
            cause = %cause.message_id(),
        )
    )]
    pub async fn issue<A: BusAggregate>(
        &self,
        cause: &StoredEvent,
        order: Order<'_, A::Body>,
    ) -> Result<(), ProjectionError> {
        let at = self.clock.now().await?;
        let actor = Actor::system(self.process);
        let metadata = self.metadata(cause, order.name, actor.clone(), at);
        let command = Command::new(cause.tenant_id, actor, at, order.body);
        let id = order.aggregate_id.to_string();
        let store = self.bus.store::<A>();
        match store.execute(&id, command, None, &metadata).await {
            Ok(version) => {
                tracing::info!(version, "command issued");
                Ok(())
            }
            Err(error) => match settled_refusal(&error, order.settled) {
                Some(code) => {
                    tracing::info!(code = code.as_str(), %error, "refused as already settled; done");
                    Ok(())
                }
                None => Err(ProjectionError::Command {
                    command: order.name,
                    aggregate: id,
                    source: error,
                }),
            },
        }
    }

    /// Tenant and correlation from the cause; `causation_id` is the cause's public id
    /// ([`ProcessIds::causation_of`]); `request_id` is derived from the cause and the command,
    /// so a retry repeats it.
    fn metadata(
        &self,
        cause: &StoredEvent,
        command: &str,
        actor: Actor,
        at: chrono::DateTime<chrono::Utc>,
    ) -> EventMetadata {
        EventMetadata {
            tenant_id: cause.tenant_id,
            actor,
            correlation_id: self.ids.correlation_of(cause),
            causation_id: ProcessIds::causation_of(cause),
            request_id: self.ids.derived(cause, command),
            recorded_at: at,
            client: None,
            // The follow-up continues the cause's trace, as a child of its span (the delivery's
            // exported span, when spans are exported).
            traceparent: cause
                .meta(event_store::trace::TRACEPARENT)
                .and_then(TraceContext::parse)
                .map(|parent| event_store::trace::continued_here(parent).to_string()),
            api_key_id: None,
        }
    }
}
