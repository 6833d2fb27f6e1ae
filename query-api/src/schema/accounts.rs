//! `accounts` and `account(id)` over `read.accounts` (a Partner sees only their own account): a
//! Relay connection with keyset pagination. Keyset (not offset) because a page then costs the same wherever it starts and
//! rows inserted meanwhile never shift or repeat what the client has already seen.
use async_graphql::{Context, Enum, ErrorExtensions, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;

use super::scope::{scoped_by_id, AccountScope};
use crate::{cursor, QueryError, TenantTx};

pub const DEFAULT_PAGE_SIZE: i32 = 20;
pub const MAX_PAGE_SIZE: i32 = 100;

const COLUMNS: &str = "id, name, legal_name, country, billing_email, currency, tier, status, \
    credit_limit, api_quota_per_minute, status_reason, active_contracts, version, \
    opened_at, opened_by, updated_at, updated_by";

/// Where an account is in its lifecycle. Stored in the read model as the domain's variant
/// name (`Active`), exposed in GraphQL's enum style (`ACTIVE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub enum AccountStatus {
    Prospect,
    Active,
    Suspended,
    Closed,
}

impl AccountStatus {
    fn as_stored(self) -> &'static str {
        match self {
            Self::Prospect => "Prospect",
            Self::Active => "Active",
            Self::Suspended => "Suspended",
            Self::Closed => "Closed",
        }
    }
}

impl TryFrom<String> for AccountStatus {
    type Error = QueryError;

    fn try_from(stored: String) -> Result<Self, Self::Error> {
        match stored.as_str() {
            "Prospect" => Ok(Self::Prospect),
            "Active" => Ok(Self::Active),
            "Suspended" => Ok(Self::Suspended),
            "Closed" => Ok(Self::Closed),
            _ => Err(QueryError::UnexpectedValue {
                column: "read.accounts.status",
                value: stored,
            }),
        }
    }
}

/// The account's tier (it selects the volume-discount table quotes use).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub enum Tier {
    Standard,
    Gold,
    Enterprise,
}

impl Tier {
    fn as_stored(self) -> &'static str {
        match self {
            Self::Standard => "Standard",
            Self::Gold => "Gold",
            Self::Enterprise => "Enterprise",
        }
    }
}

impl TryFrom<String> for Tier {
    type Error = QueryError;

    fn try_from(stored: String) -> Result<Self, Self::Error> {
        match stored.as_str() {
            "Standard" => Ok(Self::Standard),
            "Gold" => Ok(Self::Gold),
            "Enterprise" => Ok(Self::Enterprise),
            _ => Err(QueryError::UnexpectedValue {
                column: "read.accounts.tier",
                value: stored,
            }),
        }
    }
}

/// One row of `read.accounts`, as the API shows it (the tenant is implied by the caller).
#[derive(Debug, Clone, SimpleObject, sqlx::FromRow)]
pub struct Account {
    pub id: Uuid,
    pub name: String,
    pub legal_name: String,
    /// ISO 3166-1 alpha-2.
    pub country: String,
    pub billing_email: String,
    /// ISO 4217.
    pub currency: String,
    #[sqlx(try_from = "String")]
    pub tier: Tier,
    #[sqlx(try_from = "String")]
    pub status: AccountStatus,
    /// In the account's currency; a string so no client rounds it through a float.
    pub credit_limit: Option<Decimal>,
    pub api_quota_per_minute: Option<i32>,
    /// Why the account was suspended or closed.
    pub status_reason: Option<String>,
    pub active_contracts: i32,
    /// The last event of the account's stream this row reflects.
    pub version: i64,
    pub opened_at: DateTime<Utc>,
    pub opened_by: Option<Uuid>,
    pub updated_at: DateTime<Utc>,
    pub updated_by: Option<Uuid>,
}

#[derive(Debug, Clone, Default, InputObject)]
pub struct AccountFilter {
    pub status: Option<AccountStatus>,
    pub tier: Option<Tier>,
    /// Case-insensitive substring of the name.
    pub name_contains: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Enum)]
pub enum AccountOrderField {
    #[default]
    Name,
    OpenedAt,
}

impl AccountOrderField {
    fn column(self) -> &'static str {
        match self {
            Self::Name => "name",
            Self::OpenedAt => "opened_at",
        }
    }
}

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

/// Sorted by `field` in `direction`, ties broken by id (in the same direction) so the order is
/// total and a cursor names exactly one position.
#[derive(Debug, Clone, Copy, Default, InputObject)]
pub struct AccountOrder {
    #[graphql(default)]
    pub field: AccountOrderField,
    #[graphql(default)]
    pub direction: OrderDirection,
}

/// What a cursor holds: the sort key of a row and its id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Position {
    key: SortKey,
    id: Uuid,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum SortKey {
    Name(String),
    OpenedAt(DateTime<Utc>),
}

impl Position {
    fn of(account: &Account, field: AccountOrderField) -> Self {
        let key = match field {
            AccountOrderField::Name => SortKey::Name(account.name.clone()),
            AccountOrderField::OpenedAt => SortKey::OpenedAt(account.opened_at),
        };
        Self {
            key,
            id: account.id,
        }
    }

    fn field(&self) -> AccountOrderField {
        match self.key {
            SortKey::Name(_) => AccountOrderField::Name,
            SortKey::OpenedAt(_) => AccountOrderField::OpenedAt,
        }
    }
}

/// The validated arguments of `accounts`.
#[derive(Debug)]
pub struct PageRequest {
    limit: i64,
    after: Option<Position>,
    filter: AccountFilter,
    order: AccountOrder,
}

impl PageRequest {
    pub fn new(
        first: Option<i32>,
        after: Option<String>,
        filter: Option<AccountFilter>,
        order: Option<AccountOrder>,
    ) -> Result<Self, QueryError> {
        let order = order.unwrap_or_default();
        Ok(Self {
            limit: page_size(first)?,
            after: after.map(|c| position_in(&c, order.field)).transpose()?,
            filter: filter.unwrap_or_default(),
            order,
        })
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

/// A cursor from another ordering names no position in this one.
fn position_in(cursor: &str, field: AccountOrderField) -> Result<Position, QueryError> {
    let position: Position = cursor::decode(cursor)?;
    if position.field() != field {
        return Err(QueryError::BadUserInput(
            "`after` is a cursor of a different `orderBy`".into(),
        ));
    }
    Ok(position)
}

pub struct AccountConnection {
    edges: Vec<AccountEdge>,
    page_info: PageInfo,
    tenant_id: Uuid,
    scope: AccountScope,
    filter: AccountFilter,
}

#[derive(Debug, Clone, SimpleObject)]
pub struct AccountEdge {
    pub cursor: String,
    pub node: Account,
}

#[derive(Debug, Clone, SimpleObject)]
pub struct PageInfo {
    pub has_next_page: bool,
    /// Forward pagination only: true when the page was asked for `after` a cursor.
    pub has_previous_page: bool,
    pub start_cursor: Option<String>,
    pub end_cursor: Option<String>,
}

#[Object]
impl AccountConnection {
    async fn edges(&self) -> &[AccountEdge] {
        &self.edges
    }

    async fn page_info(&self) -> &PageInfo {
        &self.page_info
    }

    /// All accounts matching the filter, on every page. Counted only when asked for.
    async fn total_count(&self, ctx: &Context<'_>) -> async_graphql::Result<i64> {
        let tx = ctx.data::<TenantTx>()?;
        count(tx, self.tenant_id, self.scope, &self.filter)
            .await
            .map_err(|e| e.extend())
    }
}

pub async fn page(
    tx: &TenantTx,
    tenant_id: Uuid,
    scope: AccountScope,
    request: PageRequest,
) -> Result<AccountConnection, QueryError> {
    let mut rows = fetch_page(tx, tenant_id, scope, &request).await?;
    // One row more than asked for tells whether another page exists without a count.
    let has_next_page = rows.len() as i64 > request.limit;
    rows.truncate(request.limit as usize);
    let edges: Vec<AccountEdge> = rows
        .into_iter()
        .map(|node| AccountEdge {
            cursor: cursor::encode(&Position::of(&node, request.order.field)),
            node,
        })
        .collect();
    let page_info = PageInfo {
        has_next_page,
        has_previous_page: request.after.is_some(),
        start_cursor: edges.first().map(|e| e.cursor.clone()),
        end_cursor: edges.last().map(|e| e.cursor.clone()),
    };
    Ok(AccountConnection {
        edges,
        page_info,
        tenant_id,
        scope,
        filter: request.filter,
    })
}

/// One account the caller may see; for a Partner any other account is as absent as a missing one.
pub async fn by_id(
    tx: &TenantTx,
    tenant_id: Uuid,
    scope: AccountScope,
    id: Uuid,
) -> Result<Option<Account>, QueryError> {
    let select_from = format!("select {COLUMNS} from read.accounts");
    scoped_by_id(tx, &select_from, "id", tenant_id, scope, id).await
}

async fn fetch_page(
    tx: &TenantTx,
    tenant_id: Uuid,
    scope: AccountScope,
    request: &PageRequest,
) -> Result<Vec<Account>, QueryError> {
    let mut query = QueryBuilder::new(format!("select {COLUMNS} from read.accounts"));
    push_filter(&mut query, tenant_id, scope, &request.filter);
    if let Some(after) = &request.after {
        push_after(&mut query, request.order.direction, after);
    }
    let (column, direction) = (
        request.order.field.column(),
        request.order.direction.keyword(),
    );
    query
        .push(format_args!(
            " order by {column} {direction}, id {direction} limit "
        ))
        .push_bind(request.limit + 1);
    let rows = query
        .build_query_as()
        .fetch_all(&mut *tx.conn().await?)
        .await?;
    Ok(rows)
}

async fn count(
    tx: &TenantTx,
    tenant_id: Uuid,
    scope: AccountScope,
    filter: &AccountFilter,
) -> Result<i64, QueryError> {
    let mut query = QueryBuilder::new("select count(*) from read.accounts");
    push_filter(&mut query, tenant_id, scope, filter);
    let total = query
        .build_query_scalar()
        .fetch_one(&mut *tx.conn().await?)
        .await?;
    Ok(total)
}

/// The explicit tenant filter comes first and always; RLS would apply it anyway. A Partner's
/// scope is their own account's row.
fn push_filter<'a>(
    query: &mut QueryBuilder<'a, Postgres>,
    tenant_id: Uuid,
    scope: AccountScope,
    filter: &'a AccountFilter,
) {
    query.push(" where tenant_id = ").push_bind(tenant_id);
    scope.push(query, "id");
    if let Some(status) = filter.status {
        query.push(" and status = ").push_bind(status.as_stored());
    }
    if let Some(tier) = filter.tier {
        query.push(" and tier = ").push_bind(tier.as_stored());
    }
    if let Some(part) = &filter.name_contains {
        // strpos, not ilike: the client's text is matched literally, `%` and `_` included.
        query
            .push(" and strpos(lower(name), lower(")
            .push_bind(part.as_str())
            .push(")) > 0");
    }
}

/// A row comparison on (sort key, id) matches the two-column `order by` exactly.
fn push_after<'a>(
    query: &mut QueryBuilder<'a, Postgres>,
    direction: OrderDirection,
    after: &'a Position,
) {
    let (column, operator) = (after.field().column(), direction.after_operator());
    query.push(format_args!(" and ({column}, id) {operator} ("));
    match &after.key {
        SortKey::Name(name) => query.push_bind(name.as_str()),
        SortKey::OpenedAt(at) => query.push_bind(*at),
    };
    query.push(", ").push_bind(after.id).push(")");
}

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
    fn a_position_survives_its_cursor_for_both_orderings() {
        let at = DateTime::parse_from_rfc3339("2024-05-01T10:20:30.123456Z")
            .unwrap()
            .with_timezone(&Utc);
        for key in [SortKey::Name("Acme GmbH".into()), SortKey::OpenedAt(at)] {
            let position = Position {
                key,
                id: Uuid::from_u128(9),
            };
            let field = position.field();
            assert_eq!(
                position_in(&cursor::encode(&position), field).unwrap(),
                position
            );
        }
    }

    #[test]
    fn a_cursor_of_another_ordering_is_refused() {
        let position = Position {
            key: SortKey::Name("Acme".into()),
            id: Uuid::from_u128(9),
        };
        let err = position_in(&cursor::encode(&position), AccountOrderField::OpenedAt).unwrap_err();
        assert_eq!(err.code(), "BAD_USER_INPUT");
    }

    #[test]
    fn stored_names_round_trip_and_unknown_ones_are_errors() {
        for status in [
            AccountStatus::Prospect,
            AccountStatus::Active,
            AccountStatus::Suspended,
            AccountStatus::Closed,
        ] {
            assert_eq!(
                AccountStatus::try_from(status.as_stored().to_owned()).unwrap(),
                status
            );
        }
        for tier in [Tier::Standard, Tier::Gold, Tier::Enterprise] {
            assert_eq!(Tier::try_from(tier.as_stored().to_owned()).unwrap(), tier);
        }
        assert!(Tier::try_from("Platinum".to_owned()).is_err());
    }
}
