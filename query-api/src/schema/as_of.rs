//! `asOf`: an aggregate's state at a past time, rebuilt by replaying its stream up to that time
//! through the aggregate's own `apply` (the same fold the command side uses), never from the
//! read models, which only know the present.
use async_graphql::SimpleObject;
use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use event_store::StoredEvent;
use sqlx::QueryBuilder;
use uuid::Uuid;

use super::history::{push_stream, AggregateType, EventRow, EVENT_COLUMNS};
use super::scope::AccountScope;
use crate::{QueryError, TenantTx};

/// What an aggregate was after the last event recorded by the asked-for time.
#[derive(Debug, Clone, SimpleObject)]
pub struct AggregateState {
    pub aggregate_type: AggregateType,
    pub aggregate_id: Uuid,
    /// The sequence of the last event replayed.
    pub version: i64,
    /// When that event was recorded.
    pub recorded_at: DateTime<Utc>,
    /// The aggregate serialized as the command side holds it (its rule state, not a read model).
    pub state: serde_json::Value,
}

/// The stream a replay reads, and the time it stops at.
pub struct Target {
    pub aggregate_type: AggregateType,
    pub aggregate_id: Uuid,
    pub at: DateTime<Utc>,
}

/// The state at `target.at`, or `None` when the stream had no event by then (or the caller may
/// not read it, which looks the same).
pub async fn state(
    tx: &TenantTx,
    tenant_id: Uuid,
    scope: AccountScope,
    target: Target,
) -> Result<Option<AggregateState>, QueryError> {
    let events = prefix(fetch(tx, tenant_id, scope, &target).await?);
    let Some(last) = events.last() else {
        return Ok(None);
    };
    let (version, recorded_at) = (last.sequence, last.recorded_at);
    let state = replay(target.aggregate_type, &events)?;
    Ok(Some(AggregateState {
        aggregate_type: target.aggregate_type,
        aggregate_id: target.aggregate_id,
        version,
        recorded_at,
        state,
    }))
}

async fn fetch(
    tx: &TenantTx,
    tenant_id: Uuid,
    scope: AccountScope,
    target: &Target,
) -> Result<Vec<StoredEvent>, QueryError> {
    let mut query = QueryBuilder::new(format!("select {EVENT_COLUMNS} from events"));
    query.push(" where tenant_id = ").push_bind(tenant_id);
    push_stream(
        &mut query,
        target.aggregate_type,
        target.aggregate_id,
        scope,
    );
    query
        .push(" and recorded_at <= ")
        .push_bind(target.at)
        .push(" order by sequence");
    let rows: Vec<EventRow> = query
        .build_query_as()
        .fetch_all(&mut *tx.conn().await?)
        .await?;
    Ok(rows.into_iter().map(|row| row.event).collect())
}

/// The unbroken run of events from sequence 1. `recorded_at` is the appending transaction's
/// start, so a later event can carry an earlier time than its predecessor; stopping at the
/// first gap keeps the answer a state the aggregate really was in.
fn prefix(events: Vec<StoredEvent>) -> Vec<StoredEvent> {
    events
        .into_iter()
        .zip(1..)
        .take_while(|(event, expected)| event.sequence == *expected)
        .map(|(event, _)| event)
        .collect()
}

fn replay(
    aggregate_type: AggregateType,
    events: &[StoredEvent],
) -> Result<serde_json::Value, QueryError> {
    use aggregates::{account, approval, contract, quote, user};
    match aggregate_type {
        AggregateType::Account => fold::<account::Account>(events),
        AggregateType::User => fold::<user::User>(events),
        AggregateType::Quote => fold::<quote::Quote>(events),
        AggregateType::Approval => fold::<approval::Approval>(events),
        AggregateType::Contract => fold::<contract::Contract>(events),
    }
}

/// Deserializes each payload into `A`'s event type and applies it to a fresh `A`.
fn fold<A: Aggregate>(events: &[StoredEvent]) -> Result<serde_json::Value, QueryError> {
    let mut aggregate = A::default();
    for stored in events {
        let event: A::Event = serde_json::from_value(stored.payload.clone()).map_err(|source| {
            QueryError::UndecodableEvent {
                aggregate_type: stored.aggregate_type.clone(),
                aggregate_id: stored.aggregate_id.clone(),
                sequence: stored.sequence,
                source,
            }
        })?;
        aggregate.apply(event);
    }
    Ok(serde_json::to_value(&aggregate).expect("aggregates serialize to plain JSON"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(sequence: i64, payload: serde_json::Value) -> StoredEvent {
        StoredEvent {
            global_position: sequence,
            aggregate_type: "Account".into(),
            aggregate_id: Uuid::nil().to_string(),
            sequence,
            event_type: "AccountOpened".into(),
            event_version: "1.0".into(),
            payload,
            metadata: json!({}),
            tenant_id: Uuid::nil(),
            recorded_at: Utc::now(),
        }
    }

    #[test]
    fn a_replay_stops_at_the_first_gap_in_the_sequence() {
        let events = vec![event(1, json!(1)), event(2, json!(2)), event(4, json!(4))];
        let kept: Vec<i64> = prefix(events).iter().map(|e| e.sequence).collect();
        assert_eq!(kept, [1, 2]);
        assert!(prefix(vec![event(2, json!(2))]).is_empty());
    }

    #[test]
    fn a_payload_of_another_shape_is_an_internal_error_not_a_panic() {
        let err =
            fold::<aggregates::account::Account>(&[event(1, json!({ "Nope": {} }))]).unwrap_err();
        assert_eq!(err.code(), "INTERNAL");
    }
}
