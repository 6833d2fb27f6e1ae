//! Exactly-once application of events to projections, per stream, in order, a batch at a time.
//!
//! `projection_checkpoints` holds, per (projection, stream), the last sequence applied. The
//! rows are locked and advanced in the same transaction as the read-model changes, so a
//! redelivered event is recognised and skipped, and an event that arrives after a gap (an
//! earlier message was lost or parked) first pulls the missing events from the event store.
use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};

use event_store::history::stream_range;
use event_store::StoredEvent;
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use crate::{rebuild, Projection, ProjectionError};

/// One projection's checkpoint of one stream.
type StreamKey = (&'static str, String, String);

/// Applies `events` (in delivery order, several streams and tenants mixed) to each projection
/// that handles them, exactly once and in stream order, inside the caller's transaction, and
/// returns how many (event, projection) applications it made. The batch's checkpoints are
/// created, locked and read in two statements and advanced in one; an event already applied is
/// skipped; one that arrives after a gap first pulls the missing events from the event store.
/// Each projection then gets each tenant's events of the batch in one call (row-level security
/// is set per tenant), with `search_path` deciding which copy of the tables it writes (the live
/// `read` schema, or a rebuild's).
pub async fn apply_batch(
    conn: &mut PgConnection,
    projections: &[&dyn Projection],
    events: &[StoredEvent],
    search_path: &str,
) -> Result<u64, ProjectionError> {
    let fed: Vec<(&StoredEvent, usize)> = events
        .iter()
        .flat_map(|e| {
            projections
                .iter()
                .enumerate()
                .filter(|(_, p)| p.handles(&e.aggregate_type))
                .map(move |(at, _)| (e, at))
        })
        .collect();
    let Some((first, _)) = fed.first() else {
        return Ok(0);
    };
    // Before the checkpoints are touched: `search_path` decides which copy of them is used.
    let mut tenant = Tenant::enter(conn, first.tenant_id, search_path).await?;
    let mut last = lock(conn, fed.iter().map(|(e, at)| key(projections[*at], e))).await?;
    let mut plan: Vec<Step> = Vec::with_capacity(fed.len());
    for (event, at) in fed {
        let projection = projections[at];
        let done = last.get_mut(&key(projection, event)).expect("locked above");
        if event.sequence <= *done {
            tracing::info!(
                projection = projection.name(),
                message_id = %event.message_id(),
                "already applied; skipping"
            );
            continue;
        }
        if event.sequence - *done == 1 {
            plan.push((at, Cow::Borrowed(event)));
        } else {
            // The store is read as the event's tenant.
            tenant.switch(conn, event.tenant_id).await?;
            let missing = catch_up(conn, projection, event, *done).await?;
            plan.extend(missing.into_iter().map(|e| (at, Cow::Owned(e))));
        }
        *done = event.sequence;
    }
    let applied = apply_plan(conn, projections, plan, &mut tenant).await?;
    advance(conn, &last).await?;
    Ok(applied)
}

/// An event to apply and the index of the projection it goes to.
type Step<'e> = (usize, Cow<'e, StoredEvent>);

/// Hands each projection its events tenant by tenant (the batch's first tenant first), each
/// stream's events in the order planned; streams never span tenants, so no stream's order
/// changes.
async fn apply_plan(
    conn: &mut PgConnection,
    projections: &[&dyn Projection],
    mut plan: Vec<Step<'_>>,
    tenant: &mut Tenant<'_>,
) -> Result<u64, ProjectionError> {
    let mut tenants: Vec<Uuid> = Vec::new();
    for (_, event) in &plan {
        if !tenants.contains(&event.tenant_id) {
            tenants.push(event.tenant_id);
        }
    }
    let rank = |id: &Uuid| tenants.iter().position(|t| t == id);
    plan.sort_by_key(|(at, event)| (rank(&event.tenant_id), *at));
    for run in plan.chunk_by(|(a, x), (b, y)| a == b && x.tenant_id == y.tenant_id) {
        let (at, first) = &run[0];
        tenant.switch(conn, first.tenant_id).await?;
        let events: Vec<&StoredEvent> = run.iter().map(|(_, event)| event.as_ref()).collect();
        projections[*at].apply_events(conn, &events).await?;
    }
    Ok(plan.len() as u64)
}

/// The tenant the transaction is set to (row-level security), and where the projections'
/// tables are.
struct Tenant<'a> {
    current: Uuid,
    search_path: &'a str,
}

impl<'a> Tenant<'a> {
    async fn enter(
        conn: &mut PgConnection,
        tenant: Uuid,
        search_path: &'a str,
    ) -> Result<Self, sqlx::Error> {
        rebuild::enter(conn, tenant, search_path).await?;
        Ok(Self {
            current: tenant,
            search_path,
        })
    }

    async fn switch(&mut self, conn: &mut PgConnection, tenant: Uuid) -> Result<(), sqlx::Error> {
        if tenant != self.current {
            rebuild::enter(conn, tenant, self.search_path).await?;
            self.current = tenant;
        }
        Ok(())
    }
}

fn key(projection: &dyn Projection, event: &StoredEvent) -> StreamKey {
    (
        projection.name(),
        event.aggregate_type.clone(),
        event.aggregate_id.clone(),
    )
}

/// The last sequence applied per key, with the checkpoint rows locked until the transaction
/// ends. Missing rows are created first, so that two workers racing on a new stream serialise
/// on them instead of both applying; rows are locked in key order, so batches never deadlock.
async fn lock(
    conn: &mut PgConnection,
    keys: impl Iterator<Item = StreamKey>,
) -> Result<HashMap<StreamKey, i64>, sqlx::Error> {
    let keys: BTreeSet<StreamKey> = keys.collect();
    let (mut projections, mut types, mut ids) = (Vec::new(), Vec::new(), Vec::new());
    for (projection, aggregate_type, aggregate_id) in &keys {
        projections.push(*projection);
        types.push(aggregate_type.as_str());
        ids.push(aggregate_id.as_str());
    }
    sqlx::query(
        "insert into projection_checkpoints (projection, aggregate_type, aggregate_id, \
         last_sequence) select p, t, i, 0 from unnest($1::text[], $2::text[], $3::text[]) \
         as k(p, t, i) order by p, t, i on conflict do nothing",
    )
    .bind(&projections)
    .bind(&types)
    .bind(&ids)
    .execute(&mut *conn)
    .await?;
    let rows: Vec<(String, String, String, i64)> = sqlx::query_as(
        "select c.projection, c.aggregate_type, c.aggregate_id, c.last_sequence \
           from projection_checkpoints c \
           join unnest($1::text[], $2::text[], $3::text[]) as k(p, t, i) \
             on c.projection = k.p and c.aggregate_type = k.t and c.aggregate_id = k.i \
          order by c.projection, c.aggregate_type, c.aggregate_id for update of c",
    )
    .bind(&projections)
    .bind(&types)
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await?;
    let by_name: HashMap<&str, &'static str> = keys.iter().map(|(p, _, _)| (*p, *p)).collect();
    Ok(rows
        .into_iter()
        .filter_map(|(projection, aggregate_type, aggregate_id, last)| {
            let name = *by_name.get(projection.as_str())?;
            Some(((name, aggregate_type, aggregate_id), last))
        })
        .collect())
}

/// Writes every checkpoint of the batch in one statement.
async fn advance(
    conn: &mut PgConnection,
    last: &HashMap<StreamKey, i64>,
) -> Result<(), sqlx::Error> {
    let (mut projections, mut types, mut ids, mut sequences) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for ((projection, aggregate_type, aggregate_id), sequence) in last {
        projections.push(*projection);
        types.push(aggregate_type.as_str());
        ids.push(aggregate_id.as_str());
        sequences.push(*sequence);
    }
    sqlx::query(
        "update projection_checkpoints c set last_sequence = k.s, updated_at = now() \
           from unnest($1::text[], $2::text[], $3::text[], $4::bigint[]) as k(p, t, i, s) \
          where c.projection = k.p and c.aggregate_type = k.t and c.aggregate_id = k.i \
            and c.last_sequence < k.s",
    )
    .bind(&projections)
    .bind(&types)
    .bind(&ids)
    .bind(&sequences)
    .execute(conn)
    .await?;
    Ok(())
}

/// The stream's events after `last` up to the delivered one, read from the event store (the
/// source of truth). A hole in the store's answer means the delivered event is not (or not yet)
/// there: never apply past it.
async fn catch_up(
    conn: &mut PgConnection,
    projection: &dyn Projection,
    event: &StoredEvent,
    last: i64,
) -> Result<Vec<StoredEvent>, ProjectionError> {
    let missing = missing_events(conn, event, last).await?;
    // A reactor's group gets only the events it subscribes to, so for it a gap is the rule
    // (the skipped events are not its): worth a line only for a read model, which gets all.
    if projection.tables().is_empty() {
        tracing::debug!(
            projection = projection.name(),
            from = last + 1,
            to = event.sequence,
            "reading the skipped events of a stream from the event store"
        );
    } else {
        tracing::info!(
            projection = projection.name(),
            from = last + 1,
            to = event.sequence,
            "catching up a stream from the event store"
        );
    }
    Ok(missing)
}

/// The stream's events after `last` up to and including `event`, read from the event store,
/// all of them or an error.
pub(crate) async fn missing_events(
    conn: &mut PgConnection,
    event: &StoredEvent,
    last: i64,
) -> Result<Vec<StoredEvent>, ProjectionError> {
    let missing = stream_range(
        &mut *conn,
        &event.aggregate_type,
        &event.aggregate_id,
        last,
        event.sequence,
    )
    .await?;
    if !missing
        .iter()
        .map(|e| e.sequence)
        .eq(last + 1..=event.sequence)
    {
        let detail = format!(
            "the event store does not hold sequences {} to {}",
            last + 1,
            event.sequence
        );
        return Err(ProjectionError::inconsistent(event, detail));
    }
    Ok(missing)
}

/// The last sequence `projection` applied of a stream (0 when none): a reader that wrote
/// version N of an aggregate waits until this reaches N to read its own write.
pub async fn last_applied<'e>(
    executor: impl PgExecutor<'e>,
    projection: &str,
    aggregate_type: &str,
    aggregate_id: &str,
) -> Result<i64, sqlx::Error> {
    let last: Option<i64> = sqlx::query_scalar(
        "select last_sequence from projection_checkpoints \
         where projection = $1 and aggregate_type = $2 and aggregate_id = $3",
    )
    .bind(projection)
    .bind(aggregate_type)
    .bind(aggregate_id)
    .fetch_optional(executor)
    .await?;
    Ok(last.unwrap_or(0))
}
