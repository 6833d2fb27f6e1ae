//! How process managers send commands: deterministic ids and metadata derived from the causing
//! event, and which refusals count as "already done".
use std::sync::Arc;

use aggregates::{Actor, Command, DomainError};
use cqrs_es::Aggregate;
use event_store::{AggregateStore, CommandBus, EventMetadata, StoreError, StoredEvent};
use uuid::Uuid;

use crate::ProjectionError;
use event_store::Clock;

/// Namespace of every UUID v5 the process managers and timers derive. Never change it: ids
/// derived before and after would differ, and a redelivered event would issue its commands again.
pub const NAMESPACE: Uuid = Uuid::from_u128(0x6b2b_70c3_55e1_4c1e_9a0f_3d2c_8e41_b7a5);

/// The UUID of an event: v5 of its message id (`{aggregate_type}:{aggregate_id}:{sequence}`).
/// Used as the id of an aggregate a process creates because of the event (an approval request,
/// a contract) and as the `causation_id` of every command the event causes, so a redelivery
/// addresses the same aggregate and the audit trail links effect to cause.
pub fn event_uuid(event: &StoredEvent) -> Uuid {
    Uuid::new_v5(&NAMESPACE, event.message_id().as_bytes())
}

/// A UUID derived from an event and a purpose, for when one event causes several things.
pub fn derived_uuid(event: &StoredEvent, purpose: &str) -> Uuid {
    Uuid::new_v5(
        &NAMESPACE,
        format!("{}/{purpose}", event.message_id()).as_bytes(),
    )
}

/// The correlation id of the causing event, so a whole chain (request → quote → approval →
/// contract) shares one; an event without one starts its own chain.
pub fn correlation_of(event: &StoredEvent) -> Uuid {
    event
        .meta_uuid("correlation_id")
        .unwrap_or_else(|| event_uuid(event))
}

/// The refusal's rule code when `error` is a refusal listed in `settled`.
pub fn settled_refusal<'a>(error: &'a StoreError, settled: &[&str]) -> Option<&'a str> {
    match error {
        StoreError::Rejected(DomainError::RuleViolated { code, .. }) if settled.contains(code) => {
            Some(code)
        }
        _ => None,
    }
}

/// Sends one process manager's commands, as `Actor::system(process)`.
#[derive(Clone)]
pub struct Issuer {
    pub bus: Arc<CommandBus>,
    clock: Arc<dyn Clock>,
    process: &'static str,
}

/// One command to send: where to, what, and the rule codes that mean "already done".
pub struct Order<'a, C> {
    pub aggregate_id: Uuid,
    pub name: &'static str,
    pub body: C,
    pub settled: &'a [&'a str],
}

impl Issuer {
    pub fn new(bus: Arc<CommandBus>, clock: Arc<dyn Clock>, process: &'static str) -> Self {
        Self {
            bus,
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
            correlation_id = %correlation_of(cause),
            cause = %cause.message_id(),
        )
    )]
    pub async fn issue<A, C>(
        &self,
        store: &AggregateStore<A>,
        cause: &StoredEvent,
        order: Order<'_, C>,
    ) -> Result<(), ProjectionError>
    where
        A: Aggregate<Command = Command<C>, Error = DomainError> + Clone + 'static,
        C: Clone + Send + Sync,
    {
        let at = self.clock.now().await?;
        let actor = Actor::system(self.process);
        let metadata = self.metadata(cause, order.name, actor.clone(), at);
        let command = Command::new(cause.tenant_id, actor, at, order.body);
        let id = order.aggregate_id.to_string();
        match store.execute(&id, command, None, &metadata).await {
            Ok(version) => {
                tracing::info!(version, "command issued");
                Ok(())
            }
            Err(error) => match settled_refusal(&error, order.settled) {
                Some(code) => {
                    tracing::info!(code, %error, "refused as already settled; done");
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

    /// Tenant and correlation from the cause; `causation_id` is the cause's [`event_uuid`];
    /// `request_id` is derived from the cause and the command, so a retry repeats it.
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
            correlation_id: correlation_of(cause),
            causation_id: event_uuid(cause),
            request_id: derived_uuid(cause, command),
            recorded_at: at,
            client: None,
        }
    }
}
