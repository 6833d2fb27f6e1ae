//! `approvals` and `approval(id)` over `read.approvals` and `read.approval_levels`.
use async_graphql::{ComplexObject, Context, Enum, ErrorExtensions, InputObject, SimpleObject};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;

use super::list::{self, connection, Key, Listing, PageRequest};
use super::loaders::children_of;
use super::scope::AccountScope;
use super::stored::{role, stored_enum};
use super::{OrderDirection, Role};
use crate::{QueryError, TenantTx};

stored_enum!(
    /// Where an approval request is.
    ApprovalStatus,
    "read.approvals.status",
    [Pending, Approved, Rejected, Cancelled]
);

stored_enum!(
    /// What an approval decides on.
    SubjectType,
    "read.approvals.subject_type",
    [Quote, Contract]
);

const COLUMNS: &str = "id, subject_type, subject_id, subject_version, amount, currency, \
    requester_id, status, current_level, level_count, requested_at, decided_at, decided_by, \
    decision_reason, version, updated_at";

#[derive(Debug, Clone, SimpleObject, sqlx::FromRow)]
#[graphql(complex)]
pub struct Approval {
    pub id: Uuid,
    #[sqlx(try_from = "String")]
    pub subject_type: SubjectType,
    pub subject_id: Uuid,
    /// The version of the quote or contract that was submitted.
    pub subject_version: i64,
    pub amount: Decimal,
    pub currency: String,
    pub requester_id: Uuid,
    #[sqlx(try_from = "String")]
    pub status: ApprovalStatus,
    /// The level waiting for a decision (from 1); null once decided.
    pub current_level: Option<i32>,
    pub level_count: i32,
    pub requested_at: DateTime<Utc>,
    pub decided_at: Option<DateTime<Utc>>,
    /// Who rejected or cancelled it, or gave the last approval.
    pub decided_by: Option<Uuid>,
    /// Why it was rejected or cancelled.
    pub decision_reason: Option<String>,
    /// The last event of the approval's stream this row reflects.
    pub version: i64,
    pub updated_at: DateTime<Utc>,
    /// Children read with the row, for a subscription's message (which has no loader).
    #[graphql(skip)]
    #[sqlx(skip)]
    pub preloaded: Option<Vec<ApprovalLevel>>,
}

/// One level of the chain.
#[derive(Debug, Clone, SimpleObject, sqlx::FromRow)]
#[graphql(complex)]
pub struct ApprovalLevel {
    /// From 1.
    pub level: i32,
    #[graphql(skip)]
    #[sqlx(rename = "role")]
    pub role_name: String,
    /// When the level is (or was) due; a level's clock starts when it becomes current.
    pub due_at: DateTime<Utc>,
    pub approved_by: Option<Uuid>,
    pub approved_at: Option<DateTime<Utc>>,
    pub comment: Option<String>,
    /// The one user who may decide the level while it is delegated.
    pub delegated_to: Option<Uuid>,
    /// Whether the level went to a higher role because its SLA was breached.
    pub escalated: bool,
    /// The due time that passed, when the SLA was breached.
    pub breached_at: Option<DateTime<Utc>>,
}

#[ComplexObject]
impl ApprovalLevel {
    /// The role that approves the level (after any escalation).
    async fn role(&self) -> async_graphql::Result<Role> {
        role(&self.role_name, "read.approval_levels.role").map_err(|e| e.extend())
    }
}

#[ComplexObject]
impl Approval {
    /// The chain, level 1 first.
    async fn levels(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<ApprovalLevel>> {
        match &self.preloaded {
            Some(children) => Ok(children.clone()),
            None => children_of(ctx, self.id).await,
        }
    }
}

#[derive(Debug, Clone, Default, InputObject)]
pub struct ApprovalFilter {
    pub status: Option<ApprovalStatus>,
    /// Pending approvals the caller may decide now, by the rule `ApproveLevel` applies: the
    /// current level is delegated to them or to nobody and needs a role they hold; they are
    /// active, their approval limit (in the request's currency) covers the amount, and they
    /// neither requested it nor approved a level of it. `false` is the same as leaving it out.
    pub pending_for_me: Option<bool>,
    pub subject_type: Option<SubjectType>,
    pub subject_id: Option<Uuid>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Enum)]
pub enum ApprovalOrderField {
    #[default]
    RequestedAt,
    Amount,
}

/// Sorted by `field` in `direction`, ties broken by id.
#[derive(Debug, Clone, Copy, Default, InputObject)]
pub struct ApprovalOrder {
    #[graphql(default)]
    pub field: ApprovalOrderField,
    #[graphql(default)]
    pub direction: OrderDirection,
}

impl ApprovalOrderField {
    fn column(self) -> &'static str {
        match self {
            Self::RequestedAt => "requested_at",
            Self::Amount => "amount",
        }
    }

    fn key(self, approval: &Approval) -> (Key, Uuid) {
        let key = match self {
            Self::RequestedAt => Key::Time(approval.requested_at),
            Self::Amount => Key::Amount(approval.amount),
        };
        (key, approval.id)
    }
}

/// Who is asking, for `pendingForMe`: their current roles, activity and limit are read from
/// `read.users`, as the aggregate reads them from their stream.
pub struct Me {
    pub user_id: Uuid,
}

pub struct ApprovalListing {
    filter: ApprovalFilter,
    scope: AccountScope,
    me: Me,
}

impl Listing for ApprovalListing {
    type Node = Approval;
    const FROM: &'static str = "read.approvals";
    const COLUMNS: &'static str = COLUMNS;

    fn push_filter<'a>(&'a self, query: &mut QueryBuilder<'a, Postgres>, tenant_id: Uuid) {
        query.push(" where tenant_id = ").push_bind(tenant_id);
        push_scope(query, self.scope);
        if let Some(status) = self.filter.status {
            query.push(" and status = ").push_bind(status.as_stored());
        }
        if let Some(subject_type) = self.filter.subject_type {
            query
                .push(" and subject_type = ")
                .push_bind(subject_type.as_stored());
        }
        if let Some(subject_id) = self.filter.subject_id {
            query.push(" and subject_id = ").push_bind(subject_id);
        }
        if self.filter.pending_for_me == Some(true) {
            push_pending_for(query, &self.me);
        }
    }
}

/// A Partner sees the approvals of their own account's quotes and contracts only.
fn push_scope(query: &mut QueryBuilder<'_, Postgres>, scope: AccountScope) {
    let Some(account_id) = scope.account() else {
        return;
    };
    query
        .push(
            " and ((subject_type = 'Quote' and subject_id in \
             (select id from read.quotes where account_id = ",
        )
        .push_bind(account_id)
        .push(
            ")) or (subject_type = 'Contract' and subject_id in \
             (select id from read.contracts where account_id = ",
        )
        .push_bind(account_id)
        .push(")))");
}

/// The approval rule (`aggregates::approval`, `Request::require_approver` and `fitness`) as one
/// SQL condition, over the caller's facts in `read.users`: a pending request the caller did
/// not make and approved no level of, whose current level is delegated to them or to nobody,
/// needs a role they hold now, while they are active and their limit, in the request's
/// currency, covers the amount. `ApproveLevel` accepts exactly what this lists (the tests
/// compare the two).
fn push_pending_for<'a>(query: &mut QueryBuilder<'a, Postgres>, me: &'a Me) {
    query
        .push(" and (status = 'Pending' and requester_id <> ")
        .push_bind(me.user_id)
        .push(" and exists (select 1 from read.approval_levels l join read.users u on u.id = ")
        .push_bind(me.user_id)
        .push(
            " where l.approval_id = read.approvals.id and l.level = read.approvals.current_level \
             and (l.delegated_to is null or l.delegated_to = u.id) \
             and l.role = any(u.roles) and u.active \
             and u.approval_limit_currency = read.approvals.currency \
             and u.approval_limit >= read.approvals.amount) \
             and not exists (select 1 from read.approval_levels l \
             where l.approval_id = read.approvals.id and l.approved_by = ",
        )
        .push_bind(me.user_id)
        .push("))");
}

connection!(ApprovalConnection, ApprovalEdge, Approval, ApprovalListing);

pub async fn page(
    tx: &TenantTx,
    caller: &auth::Claims,
    paging: (Option<i32>, Option<String>),
    filter: Option<ApprovalFilter>,
    order: Option<ApprovalOrder>,
) -> Result<ApprovalConnection, QueryError> {
    let order = order.unwrap_or_default();
    let request = PageRequest::new(paging.0, paging.1, order.field.column(), order.direction)?;
    let me = Me {
        user_id: caller.sub,
    };
    let listing = ApprovalListing {
        filter: filter.unwrap_or_default(),
        scope: AccountScope::of(caller),
        me,
    };
    let page = list::page(tx, caller.tid, &listing, &request, |a| order.field.key(a)).await?;
    Ok(ApprovalConnection::new(page, caller.tid, listing))
}

/// One approval the caller may see.
pub async fn by_id(
    tx: &TenantTx,
    caller: &auth::Claims,
    id: Uuid,
) -> Result<Option<Approval>, QueryError> {
    let mut query = QueryBuilder::new(format!("select {COLUMNS} from read.approvals"));
    query.push(" where tenant_id = ").push_bind(caller.tid);
    query.push(" and id = ").push_bind(id);
    push_scope(&mut query, AccountScope::of(caller));
    let approval = query
        .build_query_as()
        .fetch_optional(&mut *tx.conn().await?)
        .await?;
    Ok(approval)
}

/// Whether approval `id` is in the caller's `pendingForMe` list now: the list's own condition,
/// for one row.
pub async fn pending_for(
    tx: &TenantTx,
    caller: &auth::Claims,
    id: Uuid,
) -> Result<bool, QueryError> {
    let me = Me {
        user_id: caller.sub,
    };
    let mut query = QueryBuilder::new("select exists (select 1 from read.approvals");
    query.push(" where tenant_id = ").push_bind(caller.tid);
    query.push(" and id = ").push_bind(id);
    push_scope(&mut query, AccountScope::of(caller));
    push_pending_for(&mut query, &me);
    query.push(")");
    let pending = query
        .build_query_scalar()
        .fetch_one(&mut *tx.conn().await?)
        .await?;
    Ok(pending)
}
