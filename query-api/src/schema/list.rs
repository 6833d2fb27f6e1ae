//! Keyset-paginated Relay connections over one read table, shared by every list: a [`Listing`]
//! says which table, which columns and which filter; this module pages, builds cursors and
//! counts. Keyset (not offset) because a page then costs the same wherever it starts, and rows
//! inserted meanwhile never shift or repeat what the client has already seen.
use async_graphql::{Enum, SimpleObject};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgRow;
use sqlx::{FromRow, Postgres, QueryBuilder};
use uuid::Uuid;

use crate::{cursor, QueryError, TenantTx};

pub const DEFAULT_PAGE_SIZE: i32 = 20;
pub const MAX_PAGE_SIZE: i32 = 100;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Enum)]
pub enum OrderDirection {
    #[default]
    Asc,
    Desc,
}

impl OrderDirection {
    pub(crate) fn keyword(self) -> &'static str {
        match self {
            Self::Asc => "asc",
            Self::Desc => "desc",
        }
    }

    /// Rows after a position come later in the sort: greater ascending, smaller descending.
    pub(crate) fn after_operator(self) -> &'static str {
        match self {
            Self::Asc => ">",
            Self::Desc => "<",
        }
    }
}

#[derive(Debug, Clone, SimpleObject)]
pub struct PageInfo {
    pub has_next_page: bool,
    /// Forward pagination only: true when the page was asked for `after` a cursor.
    pub has_previous_page: bool,
    pub start_cursor: Option<String>,
    pub end_cursor: Option<String>,
}

/// A text filter the client typed: Postgres text cannot hold a NUL, and no stored value has one,
/// so it is the client's mistake, not a server error.
pub(crate) fn text_filter(field: &str, value: Option<&String>) -> Result<(), QueryError> {
    match value {
        Some(text) if text.contains('\0') => Err(QueryError::BadUserInput(format!(
            "`{field}` must not contain NUL characters"
        ))),
        _ => Ok(()),
    }
}

/// Larger pages are capped rather than refused, as Relay clients commonly ask for "a lot".
pub(crate) fn page_size(first: Option<i32>) -> Result<i64, QueryError> {
    match first.unwrap_or(DEFAULT_PAGE_SIZE) {
        n if n < 1 => Err(QueryError::BadUserInput(format!(
            "`first` must be between 1 and {MAX_PAGE_SIZE}, got {n}"
        ))),
        n => Ok(i64::from(n.min(MAX_PAGE_SIZE))),
    }
}

/// One list: a read table, the columns its node is read from, and a filter that always
/// begins with the caller's tenant.
pub trait Listing: Send + Sync {
    type Node: for<'r> FromRow<'r, PgRow> + Send + Unpin;
    /// The table (or `table alias`) the list reads.
    const FROM: &'static str;
    const COLUMNS: &'static str;

    /// Appends ` where tenant_id = … and …`: the explicit tenant filter comes first and
    /// always; RLS would apply it anyway.
    fn push_filter<'a>(&'a self, query: &mut QueryBuilder<'a, Postgres>, tenant_id: Uuid);
}

/// A sort key as a cursor holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Key {
    Text(String),
    Time(DateTime<Utc>),
    Date(chrono::NaiveDate),
    Amount(Decimal),
}

/// What a cursor holds: the ordering it belongs to, the row's sort key and its id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Position {
    column: String,
    key: Key,
    id: Uuid,
}

/// The validated paging arguments of a list, for an ordering by `column` then id.
#[derive(Debug)]
pub struct PageRequest {
    limit: i64,
    after: Option<Position>,
    column: &'static str,
    direction: OrderDirection,
}

impl PageRequest {
    pub fn new(
        first: Option<i32>,
        after: Option<String>,
        column: &'static str,
        direction: OrderDirection,
    ) -> Result<Self, QueryError> {
        let after = after.map(|c| cursor::decode::<Position>(&c)).transpose()?;
        // A cursor from another ordering names no position in this one.
        if after.as_ref().is_some_and(|p| p.column != column) {
            return Err(QueryError::BadUserInput(
                "`after` is a cursor of a different `orderBy`".into(),
            ));
        }
        Ok(Self {
            limit: page_size(first)?,
            after,
            column,
            direction,
        })
    }
}

/// One page of nodes with their cursors. `key` gives a node's sort key for the request's
/// column.
pub struct Page<N> {
    pub edges: Vec<(String, N)>,
    pub page_info: PageInfo,
}

pub async fn page<L: Listing>(
    tx: &TenantTx,
    tenant_id: Uuid,
    listing: &L,
    request: &PageRequest,
    key: impl Fn(&L::Node) -> (Key, Uuid),
) -> Result<Page<L::Node>, QueryError> {
    let mut rows = fetch::<L>(tx, tenant_id, listing, request).await?;
    // One row more than asked for tells whether another page exists without a count.
    let has_next_page = rows.len() as i64 > request.limit;
    rows.truncate(request.limit as usize);
    let edges: Vec<(String, L::Node)> = rows
        .into_iter()
        .map(|node| {
            let (key, id) = key(&node);
            let position = Position {
                column: request.column.to_owned(),
                key,
                id,
            };
            (cursor::encode(&position), node)
        })
        .collect();
    let page_info = PageInfo {
        has_next_page,
        has_previous_page: request.after.is_some(),
        start_cursor: edges.first().map(|e| e.0.clone()),
        end_cursor: edges.last().map(|e| e.0.clone()),
    };
    Ok(Page { edges, page_info })
}

async fn fetch<L: Listing>(
    tx: &TenantTx,
    tenant_id: Uuid,
    listing: &L,
    request: &PageRequest,
) -> Result<Vec<L::Node>, QueryError> {
    let mut query = QueryBuilder::new(format!("select {} from {}", L::COLUMNS, L::FROM));
    listing.push_filter(&mut query, tenant_id);
    let (column, direction) = (request.column, request.direction.keyword());
    if let Some(after) = &request.after {
        // A row comparison on (sort key, id) matches the two-column `order by` exactly.
        let operator = request.direction.after_operator();
        query.push(format_args!(" and ({column}, id) {operator} ("));
        match &after.key {
            Key::Text(text) => query.push_bind(text.clone()),
            Key::Time(at) => query.push_bind(*at),
            Key::Date(on) => query.push_bind(*on),
            Key::Amount(amount) => query.push_bind(*amount),
        };
        query.push(", ").push_bind(after.id).push(")");
    }
    query
        .push(format_args!(
            " order by {column} {direction}, id {direction} limit "
        ))
        .push_bind(request.limit + 1);
    let rows = query
        .build_query_as()
        .fetch_all(&mut *tx.conn().await?)
        .await
        .map_err(|error| match &request.after {
            Some(_) if forged_position(&error) => {
                QueryError::BadUserInput("`after` is not a cursor this API issued".into())
            }
            _ => error.into(),
        })?;
    Ok(rows)
}

/// A cursor we issued always holds a key of its column's type; a forged one with another
/// type (or a value out of range) makes Postgres refuse the comparison.
fn forged_position(error: &sqlx::Error) -> bool {
    let code = match error {
        sqlx::Error::Database(db) => db.code(),
        _ => None,
    };
    // 42883: no such operator; 42804: datatype mismatch; class 22: data exception.
    code.is_some_and(|code| matches!(code.as_ref(), "42883" | "42804") || code.starts_with("22"))
}

/// Every row matching the listing's filter, on every page.
pub async fn count<L: Listing>(
    tx: &TenantTx,
    tenant_id: Uuid,
    listing: &L,
) -> Result<i64, QueryError> {
    let mut query = QueryBuilder::new(format!("select count(*) from {}", L::FROM));
    listing.push_filter(&mut query, tenant_id);
    let total = query
        .build_query_scalar()
        .fetch_one(&mut *tx.conn().await?)
        .await?;
    Ok(total)
}

/// Declares a Relay connection and edge type for a node whose list is `$listing`.
macro_rules! connection {
    ($connection:ident, $edge:ident, $node:ty, $listing:ty) => {
        pub struct $connection {
            edges: Vec<$edge>,
            page_info: $crate::schema::PageInfo,
            tenant_id: uuid::Uuid,
            listing: $listing,
        }

        #[derive(Debug, Clone, async_graphql::SimpleObject)]
        pub struct $edge {
            pub cursor: String,
            pub node: $node,
        }

        impl $connection {
            fn new(
                page: $crate::schema::list::Page<$node>,
                tenant_id: uuid::Uuid,
                listing: $listing,
            ) -> Self {
                let edges = page
                    .edges
                    .into_iter()
                    .map(|(cursor, node)| $edge { cursor, node })
                    .collect();
                Self {
                    edges,
                    page_info: page.page_info,
                    tenant_id,
                    listing,
                }
            }

            /// The page's nodes, for prefetching what they nest.
            pub fn nodes(&self) -> impl Iterator<Item = &$node> {
                self.edges.iter().map(|edge| &edge.node)
            }
        }

        #[async_graphql::Object]
        impl $connection {
            async fn edges(&self) -> &[$edge] {
                &self.edges
            }

            async fn page_info(&self) -> &$crate::schema::PageInfo {
                &self.page_info
            }

            /// Everything matching the filter, on every page. Counted only when asked for.
            async fn total_count(
                &self,
                ctx: &async_graphql::Context<'_>,
            ) -> async_graphql::Result<i64> {
                use async_graphql::ErrorExtensions;
                let tx = ctx.data::<$crate::TenantTx>()?;
                $crate::schema::list::count(tx, self.tenant_id, &self.listing)
                    .await
                    .map_err(|e| e.extend())
            }
        }
    };
}
pub(crate) use connection;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_size_defaults_to_20_and_is_capped_at_100() {
        assert_eq!(page_size(None).unwrap(), 20);
        assert_eq!(page_size(Some(1)).unwrap(), 1);
        assert_eq!(page_size(Some(100)).unwrap(), 100);
        assert_eq!(page_size(Some(5000)).unwrap(), 100);
    }

    #[test]
    fn zero_or_negative_page_sizes_are_bad_user_input() {
        for first in [0, -1, i32::MIN] {
            assert_eq!(page_size(Some(first)).unwrap_err().code(), "BAD_USER_INPUT");
        }
    }

    #[test]
    fn a_cursor_of_another_ordering_is_refused() {
        let position = Position {
            column: "name".into(),
            key: Key::Text("Acme".into()),
            id: Uuid::from_u128(9),
        };
        let cursor = cursor::encode(&position);
        let err = PageRequest::new(None, Some(cursor.clone()), "opened_at", OrderDirection::Asc)
            .unwrap_err();
        assert_eq!(err.code(), "BAD_USER_INPUT");
        let same = PageRequest::new(None, Some(cursor), "name", OrderDirection::Asc).unwrap();
        assert_eq!(same.after, Some(position));
    }
}
