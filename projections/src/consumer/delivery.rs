//! One batch of deliveries: applied in one transaction and acknowledged at once, or, when that
//! fails, each delivery settled on its own (a transient failure retried in place, any other
//! requeued, so the delivery limit parks a poison message alone).
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder, Retryable};
use event_store::trace::{TraceContext, TRACEPARENT};
use event_store::StoredEvent;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicNackOptions};
use sqlx::PgPool;
use tokio::time::sleep;
use tracing::Instrument;
use uuid::Uuid;

use super::{measure, Projections};
use crate::checkpoint;
use crate::rebuild;
use crate::{Projection, ProjectionError};

/// Pauses while a failure is transient (the database is away), retrying the event in place.
pub(super) const TRANSIENT_FAILURES: ExponentialBuilder = ExponentialBuilder::new()
    .with_min_delay(Duration::from_millis(200))
    .with_max_delay(Duration::from_secs(30))
    .without_max_times();

/// Pauses before requeueing a failed event, by its deliveries so far: a poison message does not
/// spin, and blocks its queue only briefly before the delivery limit parks it.
pub(super) const REQUEUES: ExponentialBuilder = ExponentialBuilder::new()
    .with_min_delay(Duration::from_millis(20))
    .with_max_delay(Duration::from_millis(500))
    .without_max_times();

/// Applies a batch in one transaction and acknowledges it at once; when that fails, settles
/// each delivery on its own.
pub(super) async fn handle_batch(
    (pool, group): (&PgPool, &str),
    projections: &Projections,
    batch: Vec<Delivery>,
) {
    let events: Option<Vec<StoredEvent>> = batch
        .iter()
        .map(|d| serde_json::from_slice(&d.data).ok())
        .collect();
    let Some(events) = events.filter(|_| batch.len() > 1) else {
        for delivery in batch {
            handle_delivery((pool, group), projections, delivery).await;
        }
        return;
    };
    // One attempt: a batch that fails for any reason is redone one delivery at a time, where
    // transient failures are retried in place, so a retry never redoes a whole batch's work
    // (the process managers' commands above all).
    match project(pool, projections, &events).await {
        Ok(()) => {
            measure::applied(group, projections, &events);
            for delivery in &batch {
                log_batched(delivery);
            }
            let last = batch.last().expect("a batch has deliveries");
            let multiple = BasicAckOptions { multiple: true };
            if let Err(error) = last.acker.ack(multiple).await {
                tracing::warn!(%error, "could not acknowledge a batch; it will be redelivered");
            }
        }
        Err(error) => {
            tracing::warn!(%error, size = batch.len(), "batch failed; applying it one by one");
            for delivery in batch {
                handle_delivery((pool, group), projections, delivery).await;
            }
        }
    }
}

/// A span per event applied within a batch, continuing its trace like a single delivery's
/// (at `info`, as a single delivery's is, so that exported traces hold batched events too).
fn log_batched(delivery: &Delivery) {
    let span = tracing::info_span!(
        "projector.batched",
        trace_id = tracing::field::Empty,
        span_id = tracing::field::Empty,
        parent_span_id = tracing::field::Empty,
    );
    record_trace(&span, delivery);
    span.in_scope(|| tracing::debug!(delivery_tag = delivery.delivery_tag, "applied in a batch"));
}

/// How a delivery is settled with the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    Ack,
    /// Back to the queue; the delivery limit parks it after repeated failures.
    Requeue,
    /// Straight to the parked queue: retrying cannot help.
    Park,
}

pub(super) async fn handle_delivery(
    (pool, group): (&PgPool, &str),
    projections: &Projections,
    delivery: Delivery,
) {
    let span = tracing::info_span!(
        "projector.delivery",
        message_id = tracing::field::Empty,
        tenant = tracing::field::Empty,
        aggregate_id = tracing::field::Empty,
        sequence = tracing::field::Empty,
        correlation_id = tracing::field::Empty,
        trace_id = tracing::field::Empty,
        span_id = tracing::field::Empty,
        parent_span_id = tracing::field::Empty,
    );
    record_trace(&span, &delivery);
    settle_delivery((pool, group), projections, delivery)
        .instrument(span)
        .await;
}

async fn settle_delivery(
    (pool, group): (&PgPool, &str),
    projections: &Projections,
    delivery: Delivery,
) {
    let outcome = match serde_json::from_slice::<StoredEvent>(&delivery.data) {
        Ok(event) => {
            record_event(&event);
            let outcome = project_with_retry(pool, projections, &event, &delivery).await;
            if outcome == Outcome::Ack {
                measure::applied(group, projections, std::slice::from_ref(&event));
            }
            outcome
        }
        Err(error) => {
            tracing::error!(%error, "message body is not a stored event; parking it");
            Outcome::Park
        }
    };
    if outcome != Outcome::Ack {
        measure::settled_badly(group, outcome == Outcome::Park);
    }
    settle(&delivery, outcome).await;
}

pub(super) fn record_event(event: &StoredEvent) {
    let span = tracing::Span::current();
    span.record("message_id", event.message_id());
    span.record("tenant", tracing::field::display(event.tenant_id));
    span.record("aggregate_id", event.aggregate_id.as_str());
    span.record("sequence", event.sequence);
    if let Some(correlation_id) = event.meta("correlation_id") {
        span.record("correlation_id", correlation_id);
    }
}

/// Continues the trace the relay carried in the `traceparent` header: this span is a child of
/// the span that stored the event.
/// Must run before the span is first entered, or an exported span keeps the parent it ran
/// under (the projector's session).
pub(super) fn record_trace(span: &tracing::Span, delivery: &Delivery) {
    let Some(parent) = trace_of(delivery) else {
        return;
    };
    let trace = event_store::trace::join(span, Some(parent));
    span.record("trace_id", trace.trace_id());
    span.record("span_id", trace.span_id());
    span.record("parent_span_id", parent.span_id());
}

/// The trace context in a delivery's headers, if it carries a valid one.
pub(super) fn trace_of(delivery: &Delivery) -> Option<TraceContext> {
    let headers = delivery.properties.headers().as_ref()?;
    let value = headers.inner().get(TRACEPARENT)?.as_long_string()?;
    TraceContext::parse(&value.to_string())
}

/// Projects one event, retrying in place while the failure is transient (the database is
/// away: requeueing would burn the delivery limit in milliseconds and park a good event); any
/// other failure requeues it (the delivery limit parks it after repeated failures).
pub(super) async fn project_with_retry(
    pool: &PgPool,
    projections: &Projections,
    event: &StoredEvent,
    delivery: &Delivery,
) -> Outcome {
    let projected = (|| project(pool, projections, std::slice::from_ref(event)))
        .retry(TRANSIENT_FAILURES)
        .when(ProjectionError::is_transient)
        .notify(|error, pause| {
            tracing::warn!(%error, ?pause, "transient failure; retrying the event");
        })
        .await;
    match projected {
        Ok(()) => Outcome::Ack,
        Err(error) => {
            tracing::error!(%error, cause = ?error, "cannot project the event; requeueing it");
            sleep(requeue_pause(delivery_count(delivery))).await;
            Outcome::Requeue
        }
    }
}

pub(super) fn requeue_pause(deliveries: u32) -> Duration {
    REQUEUES
        .build()
        .nth(deliveries as usize)
        .expect("the backoff never runs out")
}

/// Applies the events to every projection they feed, in one transaction. An error drops the
/// transaction, which rolls it back.
pub(super) async fn project(
    pool: &PgPool,
    projections: &Projections,
    events: &[StoredEvent],
) -> Result<(), ProjectionError> {
    let fed: Vec<&dyn Projection> = projections
        .iter()
        .filter(|p| events.iter().any(|e| p.handles(&e.aggregate_type)))
        .map(AsRef::as_ref)
        .collect();
    if fed.is_empty() {
        return Ok(());
    }
    let mut tx = pool.begin().await?;
    // Before any checkpoint row is locked: a rebuild swapping a projection's tables holds its
    // lock exclusively, and must not wait on us while we wait on it.
    let names: Vec<&str> = fed.iter().map(|p| p.name()).collect();
    rebuild::hold_shared(&mut tx, &names).await?;
    let applied = checkpoint::apply_batch(&mut tx, &fed, events, rebuild::LIVE_SEARCH_PATH).await?;
    tx.commit().await?;
    tracing::debug!(events = events.len(), applied, "projected a batch");
    if fed.iter().any(|p| !p.tables().is_empty()) {
        announce_read_models(pool, events).await;
    }
    Ok(())
}

/// Tells readers waiting for their writes (`X-Await-Version`) which streams this batch moved.
/// A lost announcement only delays them until their next look.
pub(super) async fn announce_read_models(pool: &PgPool, events: &[StoredEvent]) {
    let mut ids: Vec<Uuid> = events
        .iter()
        .filter_map(|e| e.aggregate_id.parse().ok())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let announced =
        event_store::Invalidations::announce(pool, event_store::invalidation::PROJECTED, &ids)
            .await;
    if let Err(error) = announced {
        tracing::debug!(%error, "could not announce a projected batch");
    }
}

/// How often the broker has delivered this message before (quorum queues count it).
pub(super) fn delivery_count(delivery: &Delivery) -> u32 {
    delivery
        .properties
        .headers()
        .as_ref()
        .and_then(|headers| headers.inner().get("x-delivery-count"))
        .and_then(|value| {
            value
                .as_long_long_int()
                .or_else(|| value.as_long_int().map(i64::from))
        })
        .map_or(0, |count| u32::try_from(count).unwrap_or(u32::MAX))
}

/// Acks or nacks. A failure here is harmless: the broker redelivers, and the checkpoint makes
/// the redelivery a no-op.
pub(super) async fn settle(delivery: &Delivery, outcome: Outcome) {
    let result = match outcome {
        Outcome::Ack => delivery.acker.ack(BasicAckOptions::default()).await,
        Outcome::Requeue | Outcome::Park => {
            let requeue = outcome == Outcome::Requeue;
            let options = BasicNackOptions {
                requeue,
                ..BasicNackOptions::default()
            };
            delivery.acker.nack(options).await
        }
    };
    match result {
        Ok(true) => {}
        Ok(false) => tracing::warn!(
            ?outcome,
            "channel was lost before settling; it will be redelivered"
        ),
        Err(error) => tracing::warn!(%error, ?outcome, "could not settle; it will be redelivered"),
    }
}
