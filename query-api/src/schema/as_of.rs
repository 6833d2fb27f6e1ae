//! `asOf`: an aggregate's state at a past time, rebuilt by replaying its stream up to that time
//! through the aggregate's own `apply` (the same fold the command side uses), never from the
//! read models, which only know the present.
//!
//! Folds are kept: history never changes, so a stream's state at a version is true for ever.
//! A process-wide cache holds each state asked for and those at every multiple of
//! `SNAPSHOT_EVERY` its fold passed, bounded by weight (the version, a proxy for size). A request folds
//! only from the nearest kept multiple below the version it needs, and reads only those events.
use std::sync::{Arc, OnceLock};

use aggregates::EventSchema;
use async_graphql::SimpleObject;
use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use event_store::{personal, StoredEvent};
use serde::de::DeserializeOwned;
use serde_json::Value;
use sqlx::QueryBuilder;
use uuid::Uuid;

use super::history::{push_stream, AggregateType, EventRow, EVENT_COLUMNS};
use super::scope::AccountScope;
use crate::{QueryError, TenantTx};

/// Versions at which a fold on the way is kept.
const SNAPSHOT_EVERY: i64 = 100;
/// Total weight (folded events) the kept states may hold.
const SNAPSHOTS_WEIGHT: u64 = 2_000_000;

/// A stream's state at a version: (aggregate type, aggregate id, version).
type SnapshotKey = (&'static str, Uuid, i64);
type Snapshots = moka::sync::Cache<SnapshotKey, Arc<Value>>;

fn snapshots() -> &'static Snapshots {
    static SNAPSHOTS: OnceLock<Snapshots> = OnceLock::new();
    SNAPSHOTS.get_or_init(|| {
        moka::sync::Cache::builder()
            .max_capacity(SNAPSHOTS_WEIGHT)
            .weigher(|(_, _, version): &SnapshotKey, _| {
                u32::try_from(*version).unwrap_or(u32::MAX).max(1)
            })
            .build()
    })
}

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
    pub state: Value,
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
    let Some((version, recorded_at)) = last_by(tx, tenant_id, scope, &target).await? else {
        return Ok(None);
    };
    let key = (
        target.aggregate_type.as_stored(),
        target.aggregate_id,
        version,
    );
    let state = match snapshots().get(&key) {
        Some(state) => state,
        None => fold_to(tx, tenant_id, target.aggregate_type, key).await?,
    };
    Ok(Some(AggregateState {
        aggregate_type: target.aggregate_type,
        aggregate_id: target.aggregate_id,
        version,
        recorded_at,
        state: Value::clone(&state),
    }))
}

/// Total events whose times the kept timelines may hold (12 bytes each).
const TIMELINES_WEIGHT: u64 = 1_000_000;

/// A stream's `recorded_at` by sequence (index 0 is sequence 1), as far as it has been read.
type Timeline = Arc<Vec<DateTime<Utc>>>;

/// Each stream's timeline: history never changes, so a request reads only the times appended
/// since, instead of scanning the stream for the first event after the asked-for time.
fn timelines() -> &'static moka::sync::Cache<(&'static str, Uuid), Timeline> {
    static TIMELINES: OnceLock<moka::sync::Cache<(&'static str, Uuid), Timeline>> = OnceLock::new();
    TIMELINES.get_or_init(|| {
        moka::sync::Cache::builder()
            .max_capacity(TIMELINES_WEIGHT)
            .weigher(|_, timeline: &Timeline| u32::try_from(timeline.len()).unwrap_or(u32::MAX))
            .build()
    })
}

/// The last event of the unbroken run from sequence 1 recorded by `at`, and its time.
/// `recorded_at` is the appending transaction's start, so a later event can carry an earlier
/// time than its predecessor; stopping before the first event recorded after `at` keeps the
/// answer a state the aggregate really was in.
async fn last_by(
    tx: &TenantTx,
    tenant_id: Uuid,
    scope: AccountScope,
    target: &Target,
) -> Result<Option<(i64, DateTime<Utc>)>, QueryError> {
    let Some(timeline) = timeline(tx, tenant_id, scope, target).await? else {
        return Ok(None);
    };
    let run = timeline
        .iter()
        .position(|recorded_at| *recorded_at > target.at)
        .unwrap_or(timeline.len());
    Ok(run.checked_sub(1).map(|last| (run as i64, timeline[last])))
}

/// The stream's timeline up to its last committed event, or `None` when the caller may not
/// read the stream (or it has no events). The kept part is re-read from its last event on,
/// under the caller's scope, so a hidden stream returns nothing even when kept.
async fn timeline(
    tx: &TenantTx,
    tenant_id: Uuid,
    scope: AccountScope,
    target: &Target,
) -> Result<Option<Timeline>, QueryError> {
    let key = (target.aggregate_type.as_stored(), target.aggregate_id);
    let kept = timelines().get(&key).unwrap_or_default();
    let mut query =
        QueryBuilder::new("select sequence, recorded_at from events where tenant_id = ");
    query.push_bind(tenant_id);
    push_stream(
        &mut query,
        target.aggregate_type,
        target.aggregate_id,
        scope,
    );
    query
        .push(" and sequence >= ")
        .push_bind(kept.len().max(1) as i64)
        .push(" order by sequence");
    let rows: Vec<(i64, DateTime<Utc>)> = query
        .build_query_as()
        .fetch_all(&mut *tx.conn().await?)
        .await?;
    if rows.is_empty() {
        return Ok(None);
    }
    if rows.len() == 1 && !kept.is_empty() {
        return Ok(Some(kept));
    }
    // A committed stream is a contiguous run from 1 (each event needs its predecessor), so the
    // new rows continue the kept ones; the first row repeats the last kept event.
    let mut times = Vec::clone(&kept);
    times.extend(
        rows.into_iter()
            .filter(|(sequence, _)| *sequence > kept.len() as i64)
            .map(|(_, recorded_at)| recorded_at),
    );
    let timeline = Arc::new(times);
    timelines().insert(key, timeline.clone());
    Ok(Some(timeline))
}

/// Folds the stream up to `key`'s version from the nearest kept state below it, and keeps the
/// result (and the state at every multiple of `SNAPSHOT_EVERY` passed).
async fn fold_to(
    tx: &TenantTx,
    tenant_id: Uuid,
    aggregate_type: AggregateType,
    key: SnapshotKey,
) -> Result<Arc<Value>, QueryError> {
    let (stored_type, aggregate_id, version) = key;
    let base = (1..=version / SNAPSHOT_EVERY)
        .rev()
        .map(|k| k * SNAPSHOT_EVERY)
        .find_map(|at| Some((at, snapshots().get(&(stored_type, aggregate_id, at))?)));
    let from = base.as_ref().map_or(0, |(at, _)| *at);
    let mut events = fetch(tx, tenant_id, aggregate_type, aggregate_id, from, version).await?;
    let base = base.map(|(_, state)| state);
    // A state holding personal data is never kept: forgetting its subject must erase it from
    // the next answer on.
    let keep = !events.iter().any(|e| personal::holds_sealed(&e.payload));
    personal::reveal_events(&mut *tx.conn().await?, &mut events).await?;
    let kept = (key, keep);
    use aggregates::{account, approval, contract, quote, tenant, user};
    match aggregate_type {
        AggregateType::Account => fold::<account::Account>(kept, base, &events),
        AggregateType::User => fold::<user::User>(kept, base, &events),
        AggregateType::Quote => fold::<quote::Quote>(kept, base, &events),
        AggregateType::Approval => fold::<approval::Approval>(kept, base, &events),
        AggregateType::Contract => fold::<contract::Contract>(kept, base, &events),
        AggregateType::Tenant => fold::<tenant::Tenant>(kept, base, &events),
    }
}

/// Events `from + 1 ..= to` of the stream, in order.
async fn fetch(
    tx: &TenantTx,
    tenant_id: Uuid,
    aggregate_type: AggregateType,
    aggregate_id: Uuid,
    from: i64,
    to: i64,
) -> Result<Vec<StoredEvent>, QueryError> {
    let mut query = QueryBuilder::new(format!("select {EVENT_COLUMNS} from events"));
    query.push(" where tenant_id = ").push_bind(tenant_id);
    push_stream(
        &mut query,
        aggregate_type,
        aggregate_id,
        AccountScope::Tenant,
    );
    query
        .push(" and sequence > ")
        .push_bind(from)
        .push(" and sequence <= ")
        .push_bind(to)
        .push(" order by sequence");
    let rows: Vec<EventRow> = query
        .build_query_as()
        .fetch_all(&mut *tx.conn().await?)
        .await?;
    Ok(rows.into_iter().map(|row| row.event).collect())
}

/// Applies `events` to `base` (a kept state) or to a fresh `A`, keeping (when `keep`) the result
/// under `key` and the state at every multiple of `SNAPSHOT_EVERY` on the way.
fn fold<A: Aggregate<Event: EventSchema> + DeserializeOwned>(
    (key, keep): (SnapshotKey, bool),
    base: Option<Arc<Value>>,
    events: &[StoredEvent],
) -> Result<Arc<Value>, QueryError> {
    let (stored_type, aggregate_id, version) = key;
    let mut aggregate: A = match base {
        Some(state) => serde_json::from_value(Value::clone(&state)).map_err(|error| {
            QueryError::UndecodableEvent {
                aggregate_type: stored_type.to_owned(),
                aggregate_id: aggregate_id.to_string(),
                sequence: 0,
                reason: error.to_string(),
            }
        })?,
        None => A::default(),
    };
    for stored in events {
        let event: A::Event =
            event_store::decode_stored(stored).map_err(|error| QueryError::UndecodableEvent {
                aggregate_type: stored.aggregate_type.clone(),
                aggregate_id: stored.aggregate_id.clone(),
                sequence: stored.sequence,
                reason: error.to_string(),
            })?;
        aggregate.apply(event);
        // Every multiple passed, not only the last: a later request for an earlier time then
        // starts near it instead of from the first event.
        if keep && stored.sequence % SNAPSHOT_EVERY == 0 && stored.sequence < version {
            let on_the_way = (stored_type, aggregate_id, stored.sequence);
            snapshots().insert(on_the_way, Arc::new(to_json(&aggregate)));
        }
    }
    let state = Arc::new(to_json(&aggregate));
    if keep {
        snapshots().insert(key, state.clone());
    }
    Ok(state)
}

fn to_json<A: Aggregate>(aggregate: &A) -> Value {
    serde_json::to_value(aggregate).expect("aggregates serialize to plain JSON")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(sequence: i64, payload: Value) -> StoredEvent {
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
    fn a_payload_of_another_shape_is_an_internal_error_not_a_panic() {
        let key = ("Account", Uuid::new_v4(), 1);
        let err = fold::<aggregates::account::Account>(
            (key, true),
            None,
            &[event(1, json!({ "Nope": {} }))],
        )
        .unwrap_err();
        assert_eq!(err.code(), "INTERNAL");
        assert!(
            snapshots().get(&key).is_none(),
            "nothing is kept of a failed fold"
        );
    }
}
