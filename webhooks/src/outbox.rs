//! The `webhooks` consumer group's one projection: records, for each event, a delivery to every
//! enabled endpoint of the event's tenant that subscribes to its type. It runs in the batch's
//! transaction, with that tenant set (row-level security: another tenant's endpoints are not
//! even visible) and before the group's checkpoints advance, so each matching event is recorded
//! once per endpoint, whatever RabbitMQ redelivers. Sending is the delivery worker's
//! ([`crate::sender`]): a slow or failing endpoint never holds up the consumer.
//!
//! Endpoints change at run time, so the group takes every event and filters here, in the one
//! statement per tenant of a batch that matches events to endpoints (an index-free scan of the
//! tenant's few endpoints).
use async_trait::async_trait;
use event_store::StoredEvent;
use projections::{Projection, ProjectionError};
use serde_json::json;
use sqlx::PgConnection;

use crate::endpoint::ALL_EVENTS;

/// The consumer group, and its projection's checkpoint name.
pub const WEBHOOKS: &str = "webhooks";

/// Records deliveries; see the module's documentation.
pub struct WebhookOutbox;

/// What an endpoint receives for one event (Standard Webhooks' `type`, `timestamp`, `data`).
/// Recorded with the payload as stored, its personal data sealed: the sender reveals it as it
/// sends, so a subject forgotten before a send or a retry goes out erased.
pub fn body(event: &StoredEvent) -> String {
    json!({
        "type": event.event_type,
        "timestamp": event.recorded_at,
        "data": {
            "aggregate_type": event.aggregate_type,
            "aggregate_id": event.aggregate_id,
            "version": event.sequence,
            "event_version": event.event_version,
            "position": event.global_position,
            "payload": event.payload,
        },
    })
    .to_string()
}

#[async_trait]
impl Projection for WebhookOutbox {
    fn name(&self) -> &'static str {
        WEBHOOKS
    }

    fn handles(&self, _aggregate_type: &str) -> bool {
        true
    }

    fn routing_keys(&self) -> Vec<String> {
        vec!["#".into()]
    }

    async fn apply_events(
        &self,
        conn: &mut PgConnection,
        events: &[&StoredEvent],
    ) -> Result<(), ProjectionError> {
        let Some(first) = events.first() else {
            return Ok(());
        };
        let mut columns = Columns::default();
        for event in events {
            columns.push(event);
        }
        // The explicit tenant filter repeats what row-level security already guarantees.
        sqlx::query(
            "insert into webhook_deliveries (id, tenant_id, endpoint_id, global_position, \
                    aggregate_type, aggregate_id, sequence, event_type, body, next_attempt_at) \
             select gen_random_uuid(), e.tenant_id, e.id, k.p, k.t, k.i, k.s, k.e, k.b, now() \
               from unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::text[], \
                           $6::text[]) with ordinality as k(p, t, i, s, e, b, n) \
               join webhook_endpoints e \
                 on e.tenant_id = $7 and e.enabled \
                and (k.e = any(e.event_types) or $8 = any(e.event_types)) \
              order by k.n \
             on conflict do nothing",
        )
        .bind(&columns.positions)
        .bind(&columns.types)
        .bind(&columns.ids)
        .bind(&columns.sequences)
        .bind(&columns.event_types)
        .bind(&columns.bodies)
        .bind(first.tenant_id)
        .bind(ALL_EVENTS)
        .execute(conn)
        .await?;
        Ok(())
    }
}

/// The batch's events as the statement's arrays.
#[derive(Default)]
struct Columns {
    positions: Vec<i64>,
    types: Vec<String>,
    ids: Vec<String>,
    sequences: Vec<i64>,
    event_types: Vec<String>,
    bodies: Vec<String>,
}

impl Columns {
    fn push(&mut self, event: &StoredEvent) {
        self.positions.push(event.global_position);
        self.types.push(event.aggregate_type.clone());
        self.ids.push(event.aggregate_id.clone());
        self.sequences.push(event.sequence);
        self.event_types.push(event.event_type.clone());
        self.bodies.push(body(event));
    }
}
