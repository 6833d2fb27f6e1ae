//! `eventHistory` (one stream in sequence order) and `auditLog` (the tenant's events in commit
//! order), read from the event store inside the request's transaction. The `events` table has
//! no row-level security, so the tenant filter written here is the only lock: every query
//! starts with it.
use async_graphql::{Context, ErrorExtensions, Object, SimpleObject};
use chrono::{DateTime, Utc};
use event_store::StoredEvent;
use serde::{Deserialize, Serialize};
use sqlx::{FromRow, Postgres, QueryBuilder};
use uuid::Uuid;

use super::list::page_size;
use super::scope::AccountScope;
use super::stored::stored_enum;
use super::PageInfo;
use crate::{cursor, QueryError, TenantTx};

stored_enum!(
    /// The kind of aggregate a stream belongs to (`Tenant`: the tenant's policy changes).
    AggregateType,
    "events.aggregate_type",
    [Account, User, Quote, Approval, Contract, Tenant]
);

/// `StoredEvent`'s columns, plus the commit position (`tx`) the audit log pages by.
pub(super) const EVENT_COLUMNS: &str = "tx_id::text::bigint as tx, global_position, \
    aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, \
    tenant_id, recorded_at";

#[derive(FromRow)]
pub(super) struct EventRow {
    tx: i64,
    #[sqlx(flatten)]
    pub event: StoredEvent,
}

/// One stored event with who caused it and why.
#[derive(Debug, Clone, SimpleObject)]
pub struct HistoryEvent {
    pub aggregate_type: AggregateType,
    pub aggregate_id: String,
    /// The event's place in its stream, from 1 (the aggregate's version after it).
    pub sequence: i64,
    pub event_type: String,
    /// The schema version of the payload.
    pub event_version: String,
    /// The event as stored (externally tagged: `{"<EventType>": {…}}`).
    pub payload: serde_json::Value,
    /// When the database stored it.
    pub recorded_at: DateTime<Utc>,
    /// The user who sent the command, unless a system process did; the API key's id when a
    /// key did (then `apiKeyId` says so).
    pub user_id: Option<Uuid>,
    /// The API key that sent the command, when a machine client did.
    pub api_key_id: Option<Uuid>,
    /// The process (approval flow, timer, …) that sent the command, if no user did.
    pub system_process: Option<String>,
    pub correlation_id: Option<Uuid>,
    pub causation_id: Option<Uuid>,
    pub request_id: Option<Uuid>,
    /// The caller's user agent, when it sent one.
    pub client: Option<String>,
    /// Position in the whole store; increasing, but not commit order.
    pub global_position: i64,
}

impl TryFrom<StoredEvent> for HistoryEvent {
    type Error = QueryError;

    fn try_from(event: StoredEvent) -> Result<Self, QueryError> {
        Ok(Self {
            aggregate_type: AggregateType::try_from(event.aggregate_type.clone())?,
            user_id: event.meta_uuid("user_id"),
            api_key_id: event.meta_uuid("api_key_id"),
            system_process: event.meta("system_process").map(str::to_owned),
            correlation_id: event.meta_uuid("correlation_id"),
            causation_id: event.meta_uuid("causation_id"),
            request_id: event.meta_uuid("request_id"),
            client: event.meta("client").map(str::to_owned),
            aggregate_id: event.aggregate_id,
            sequence: event.sequence,
            event_type: event.event_type,
            event_version: event.event_version,
            payload: event.payload,
            recorded_at: event.recorded_at,
            global_position: event.global_position,
        })
    }
}

/// What the audit log is narrowed to. `from` is inclusive and `to` exclusive, so consecutive
/// ranges neither overlap nor leave a gap.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub user_id: Option<Uuid>,
    pub aggregate_type: Option<AggregateType>,
}

/// Which events a list holds.
#[derive(Debug, Clone)]
pub enum Selection {
    /// One stream, as far as the caller may read it.
    Stream {
        aggregate_type: AggregateType,
        aggregate_id: Uuid,
        scope: AccountScope,
    },
    /// The tenant's events in commit order.
    Audit(AuditFilter),
}

/// Where a cursor points: after a sequence of the stream, or after a commit position.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
enum Position {
    Sequence(i64),
    Commit { tx: i64, global_position: i64 },
}

impl Selection {
    /// ` where tenant_id = … and …`: the tenant first, always.
    fn push_filter(&self, query: &mut QueryBuilder<'_, Postgres>, tenant_id: Uuid) {
        query.push(" where tenant_id = ").push_bind(tenant_id);
        match self {
            Self::Stream {
                aggregate_type,
                aggregate_id,
                scope,
            } => push_stream(query, *aggregate_type, *aggregate_id, *scope),
            Self::Audit(filter) => push_audit(query, filter),
        }
    }

    fn order_by(&self) -> &'static str {
        match self {
            Self::Stream { .. } => " order by sequence",
            Self::Audit(_) => " order by tx_id, global_position",
        }
    }

    fn position(&self, row: &EventRow) -> Position {
        match self {
            Self::Stream { .. } => Position::Sequence(row.event.sequence),
            Self::Audit(_) => Position::Commit {
                tx: row.tx,
                global_position: row.event.global_position,
            },
        }
    }

    /// ` and <after the cursor>`; a cursor of the other kind of list is refused.
    fn push_after(
        &self,
        query: &mut QueryBuilder<'_, Postgres>,
        after: Position,
    ) -> Result<(), QueryError> {
        match (self, after) {
            (Self::Stream { .. }, Position::Sequence(sequence)) => {
                query.push(" and sequence > ").push_bind(sequence);
            }
            (
                Self::Audit(_),
                Position::Commit {
                    tx,
                    global_position,
                },
            ) => {
                // Compared as xid8, not as a cast, so the commit-order index serves the range.
                query
                    .push(" and (tx_id, global_position) > (")
                    .push_bind(tx.to_string())
                    .push("::xid8, ")
                    .push_bind(global_position)
                    .push(")");
            }
            _ => {
                return Err(QueryError::BadUserInput(
                    "`after` is a cursor of a different list".into(),
                ))
            }
        }
        Ok(())
    }
}

/// One stream of the caller's tenant, and only if the caller's scope reaches it.
pub(super) fn push_stream(
    query: &mut QueryBuilder<'_, Postgres>,
    aggregate_type: AggregateType,
    aggregate_id: Uuid,
    scope: AccountScope,
) {
    query
        .push(" and aggregate_type = ")
        .push_bind(aggregate_type.as_stored())
        .push(" and aggregate_id = ")
        .push_bind(aggregate_id.to_string());
    scope.push_streams(query);
}

fn push_audit(query: &mut QueryBuilder<'_, Postgres>, filter: &AuditFilter) {
    // The xmin rule: only transactions older than every one still running, so a page boundary
    // can never pass an event whose transaction commits later with a smaller position.
    query.push(" and tx_id < pg_snapshot_xmin(pg_current_snapshot())");
    if let Some(from) = filter.from {
        query.push(" and recorded_at >= ").push_bind(from);
    }
    if let Some(to) = filter.to {
        query.push(" and recorded_at < ").push_bind(to);
    }
    // The generated column (migration 0021), not `metadata ->> 'user_id'`: under row-level
    // security only a leakproof comparison can use the tenant-user-commit-order index.
    if let Some(user_id) = filter.user_id {
        query.push(" and user_id = ").push_bind(user_id.to_string());
    }
    if let Some(aggregate_type) = filter.aggregate_type {
        query
            .push(" and aggregate_type = ")
            .push_bind(aggregate_type.as_stored());
    }
}

/// A page of events.
pub struct EventConnection {
    edges: Vec<EventEdge>,
    page_info: PageInfo,
    tenant_id: Uuid,
    selection: Selection,
}

#[derive(Debug, Clone, SimpleObject)]
pub struct EventEdge {
    pub cursor: String,
    pub node: HistoryEvent,
}

#[Object]
impl EventConnection {
    async fn edges(&self) -> &[EventEdge] {
        &self.edges
    }

    async fn page_info(&self) -> &PageInfo {
        &self.page_info
    }

    /// Every event of the list, on every page. Counted only when asked for.
    async fn total_count(&self, ctx: &Context<'_>) -> async_graphql::Result<i64> {
        count(ctx.data::<TenantTx>()?, self.tenant_id, &self.selection)
            .await
            .map_err(|e| e.extend())
    }
}

pub async fn page(
    tx: &TenantTx,
    tenant_id: Uuid,
    selection: Selection,
    paging: (Option<i32>, Option<String>),
) -> Result<EventConnection, QueryError> {
    let limit = page_size(paging.0)?;
    let after = paging
        .1
        .map(|c| cursor::decode::<Position>(&c))
        .transpose()?;
    let mut rows = fetch(tx, tenant_id, &selection, after, limit).await?;
    // One row more than asked for tells whether another page exists without a count.
    let has_next_page = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let payloads = rows
        .iter_mut()
        .map(|row| (row.event.tenant_id, &mut row.event.payload))
        .collect();
    event_store::personal::reveal(&mut *tx.conn().await?, payloads).await?;
    let edges = rows
        .into_iter()
        .map(|row| {
            let cursor = cursor::encode(&selection.position(&row));
            HistoryEvent::try_from(row.event).map(|node| EventEdge { cursor, node })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let page_info = PageInfo {
        has_next_page,
        has_previous_page: after.is_some(),
        start_cursor: edges.first().map(|e| e.cursor.clone()),
        end_cursor: edges.last().map(|e| e.cursor.clone()),
    };
    Ok(EventConnection {
        edges,
        page_info,
        tenant_id,
        selection,
    })
}

async fn fetch(
    tx: &TenantTx,
    tenant_id: Uuid,
    selection: &Selection,
    after: Option<Position>,
    limit: i64,
) -> Result<Vec<EventRow>, QueryError> {
    let mut query = QueryBuilder::new(format!("select {EVENT_COLUMNS} from events"));
    selection.push_filter(&mut query, tenant_id);
    if let Some(after) = after {
        selection.push_after(&mut query, after)?;
    }
    query
        .push(selection.order_by())
        .push(" limit ")
        .push_bind(limit + 1);
    let rows = query
        .build_query_as()
        .fetch_all(&mut *tx.conn().await?)
        .await?;
    Ok(rows)
}

async fn count(tx: &TenantTx, tenant_id: Uuid, selection: &Selection) -> Result<i64, QueryError> {
    let mut query = QueryBuilder::new("select count(*) from events");
    selection.push_filter(&mut query, tenant_id);
    let total = query
        .build_query_scalar()
        .fetch_one(&mut *tx.conn().await?)
        .await?;
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_of_the_audit_log_is_refused_by_a_stream_history() {
        let stream = Selection::Stream {
            aggregate_type: AggregateType::Quote,
            aggregate_id: Uuid::nil(),
            scope: AccountScope::Tenant,
        };
        let commit = Position::Commit {
            tx: 7,
            global_position: 9,
        };
        let mut query = QueryBuilder::new("select 1");
        let err = stream.push_after(&mut query, commit).unwrap_err();
        assert_eq!(err.code(), "BAD_USER_INPUT");
        let decoded: Position = cursor::decode(&cursor::encode(&commit)).unwrap();
        assert_eq!(decoded, commit);
    }
}
