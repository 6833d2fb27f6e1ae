//! Nested lists (a quote's lines, an approval's levels, a contract's versions) through
//! async-graphql's `DataLoader`, which reads the children of many parents with one
//! `= any($2)` statement. A page of 50 quotes with lines is two statements, not 51.
//!
//! A list resolver [`prefetch`]es its whole page into the loader's (per-request) cache before
//! its nodes resolve. Left to the loader's batching window alone, a large page splits into
//! several statements: async-graphql polls at most 32 list items per turn and then yields, and
//! if the window has closed meanwhile the rest go into a second batch. The window still batches
//! whatever is not prefetched.
use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Arc;

use async_graphql::dataloader::{DataLoader, HashMapCache, Loader};
use async_graphql::{Context, ErrorExtensions};
use sqlx::postgres::PgRow;
use sqlx::{FromRow, Row};
use uuid::Uuid;

use super::{ApprovalLevel, ContractVersion, QuoteLine};
use crate::{QueryError, TenantTx};

/// A row type that belongs to a parent row, with the one statement that reads the children of
/// many parents.
pub trait Children: for<'r> FromRow<'r, PgRow> + Clone + Send + Sync + Unpin + 'static {
    /// Binds `$1` = tenant and `$2` = the parents' ids; selects the parent's id as `parent_id`
    /// and orders by parent, then by the children's own order.
    const SQL: &'static str;
}

impl Children for QuoteLine {
    const SQL: &'static str = "select quote_id as parent_id, line_id, position, sku, \
        description, quantity, coalesce(unit, 'Piece') as unit, unit_price, \
        volume_discount_percent, line_total \
        from read.quote_lines where tenant_id = $1 and quote_id = any($2) \
        order by quote_id, position";
}

impl Children for ApprovalLevel {
    const SQL: &'static str = "select approval_id as parent_id, level, role, due_at, \
        approved_by, approved_at, comment, delegated_to, escalated, breached_at \
        from read.approval_levels where tenant_id = $1 and approval_id = any($2) \
        order by approval_id, level";
}

impl Children for ContractVersion {
    const SQL: &'static str = "select contract_id as parent_id, version, terms, value, \
        amended_at, amended_by from read.contract_versions \
        where tenant_id = $1 and contract_id = any($2) order by contract_id, version";
}

/// Loads `C` rows by parent id inside the request's transaction.
pub struct ChildLoader<C> {
    tx: TenantTx,
    tenant_id: Uuid,
    rows: PhantomData<fn() -> C>,
}

impl<C> ChildLoader<C> {
    fn new(tx: TenantTx, tenant_id: Uuid) -> Self {
        Self {
            tx,
            tenant_id,
            rows: PhantomData,
        }
    }
}

/// A child row with the id of its parent.
struct WithParent<C> {
    parent_id: Uuid,
    row: C,
}

impl<'r, C: FromRow<'r, PgRow>> FromRow<'r, PgRow> for WithParent<C> {
    fn from_row(row: &'r PgRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            parent_id: row.try_get("parent_id")?,
            row: C::from_row(row)?,
        })
    }
}

impl<C: Children> Loader<Uuid> for ChildLoader<C> {
    type Value = Vec<C>;
    // Shared by every resolver waiting on the batch, hence cloneable.
    type Error = Arc<QueryError>;

    async fn load(&self, parents: &[Uuid]) -> Result<HashMap<Uuid, Vec<C>>, Self::Error> {
        let rows: Vec<WithParent<C>> = sqlx::query_as(C::SQL)
            .bind(self.tenant_id)
            .bind(parents)
            .fetch_all(&mut *self.tx.conn().await?)
            .await
            .map_err(QueryError::from)?;
        // Every parent gets an entry, childless ones an empty list, so the cache answers for
        // them too instead of sending them to the database again.
        let mut children: HashMap<Uuid, Vec<C>> =
            parents.iter().map(|id| (*id, Vec::new())).collect();
        for WithParent { parent_id, row } in rows {
            children.entry(parent_id).or_default().push(row);
        }
        Ok(children)
    }
}

/// The request's loaders, one per kind of nested list. Built per request: they hold its
/// transaction, and their batches must never mix two callers' rows.
pub fn attach(
    request: async_graphql::Request,
    tx: &TenantTx,
    tenant_id: Uuid,
) -> async_graphql::Request {
    request
        .data(loader::<QuoteLine>(tx, tenant_id))
        .data(loader::<ApprovalLevel>(tx, tenant_id))
        .data(loader::<ContractVersion>(tx, tenant_id))
}

type ChildDataLoader<C> = DataLoader<ChildLoader<C>, HashMapCache>;

fn loader<C: Children>(tx: &TenantTx, tenant_id: Uuid) -> ChildDataLoader<C> {
    let loader = ChildLoader::new(tx.clone(), tenant_id);
    DataLoader::with_cache(loader, tokio::spawn, HashMapCache::default())
}

/// Loads the children of a whole page in one statement, when the query selects
/// `edges { node { <field> } }`, so that each node then finds its own in the cache.
pub async fn prefetch<C: Children>(
    ctx: &Context<'_>,
    field: &str,
    parents: impl IntoIterator<Item = Uuid>,
) -> async_graphql::Result<()> {
    let selected = ctx.look_ahead().field("edges").field("node").field(field);
    if !selected.exists() {
        return Ok(());
    }
    let loader = ctx.data::<ChildDataLoader<C>>()?;
    loader
        .load_many(parents)
        .await
        .map_err(|error| error.extend())?;
    Ok(())
}

/// The children of one parent, read at once in `tx` (a subscription's message, which has no
/// request-wide loader: its children must come from the transaction that read the parent).
pub(crate) async fn children<C: Children>(
    tx: &TenantTx,
    tenant_id: Uuid,
    parent: Uuid,
) -> Result<Vec<C>, QueryError> {
    let rows: Vec<WithParent<C>> = sqlx::query_as(C::SQL)
        .bind(tenant_id)
        .bind([parent])
        .fetch_all(&mut *tx.conn().await?)
        .await?;
    Ok(rows.into_iter().map(|r| r.row).collect())
}

/// The children of `parent`, batched with its siblings' (none is an empty list).
pub async fn children_of<C: Children>(
    ctx: &Context<'_>,
    parent: Uuid,
) -> async_graphql::Result<Vec<C>> {
    let loader = ctx.data::<ChildDataLoader<C>>()?;
    let children = loader
        .load_one(parent)
        .await
        .map_err(|error| error.extend())?;
    Ok(children.unwrap_or_default())
}
