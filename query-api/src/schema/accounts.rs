//! `accounts` and `account(id)` over `read.accounts` (a Partner sees only their own account),
//! paged like every list (`list`).
use async_graphql::{Enum, InputObject, SimpleObject};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;

use super::list::{self, connection, Key, Listing, PageRequest};
use super::scope::{scoped_by_id, AccountScope};
use super::stored::stored_enum;
use super::OrderDirection;
use crate::{QueryError, TenantTx};

const COLUMNS: &str = "id, name, legal_name, country, billing_email, currency, tier, status, \
    credit_limit, api_quota_per_minute, status_reason, active_contracts, version, \
    opened_at, opened_by, updated_at, updated_by";

stored_enum!(
    /// Where an account is in its lifecycle.
    AccountStatus,
    "read.accounts.status",
    [Prospect, Active, Suspended, Closed]
);

stored_enum!(
    /// The account's tier (it selects the volume-discount table quotes use).
    Tier,
    "read.accounts.tier",
    [Standard, Gold, Enterprise]
);

/// One row of `read.accounts`, as the API shows it (the tenant is implied by the caller).
#[derive(Debug, Clone, SimpleObject, sqlx::FromRow)]
pub struct Account {
    pub id: Uuid,
    pub name: String,
    /// `[erased]` once the account's contact data is forgotten (`ForgetContactData`).
    pub legal_name: String,
    /// ISO 3166-1 alpha-2.
    pub country: String,
    /// `[erased]` once the account's contact data is forgotten (`ForgetContactData`).
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

/// Sorted by `field` in `direction`, ties broken by id (in the same direction) so the order is
/// total and a cursor names exactly one position.
#[derive(Debug, Clone, Copy, Default, InputObject)]
pub struct AccountOrder {
    #[graphql(default)]
    pub field: AccountOrderField,
    #[graphql(default)]
    pub direction: OrderDirection,
}

impl AccountOrderField {
    fn key(self, account: &Account) -> (Key, Uuid) {
        let key = match self {
            Self::Name => Key::Text(account.name.clone()),
            Self::OpenedAt => Key::Time(account.opened_at),
        };
        (key, account.id)
    }
}

pub struct AccountListing {
    filter: AccountFilter,
    scope: AccountScope,
}

impl Listing for AccountListing {
    type Node = Account;
    const FROM: &'static str = "read.accounts";
    const COLUMNS: &'static str = COLUMNS;

    /// A Partner's scope is their own account's row.
    fn push_filter<'a>(&'a self, query: &mut QueryBuilder<'a, Postgres>, tenant_id: Uuid) {
        query.push(" where tenant_id = ").push_bind(tenant_id);
        self.scope.push(query, "id");
        if let Some(status) = self.filter.status {
            query.push(" and status = ").push_bind(status.as_stored());
        }
        if let Some(tier) = self.filter.tier {
            query.push(" and tier = ").push_bind(tier.as_stored());
        }
        if let Some(part) = &self.filter.name_contains {
            // strpos, not ilike: the client's text is matched literally, `%` and `_` included.
            query
                .push(" and strpos(lower(name), lower(")
                .push_bind(part.as_str())
                .push(")) > 0");
        }
    }
}

connection!(AccountConnection, AccountEdge, Account, AccountListing);

pub async fn page(
    tx: &TenantTx,
    tenant_id: Uuid,
    scope: AccountScope,
    paging: (Option<i32>, Option<String>),
    filter: Option<AccountFilter>,
    order: Option<AccountOrder>,
) -> Result<AccountConnection, QueryError> {
    let order = order.unwrap_or_default();
    let request = PageRequest::new(paging.0, paging.1, order.field.column(), order.direction)?;
    let filter = filter.unwrap_or_default();
    list::text_filter("nameContains", filter.name_contains.as_ref())?;
    let listing = AccountListing { filter, scope };
    let page = list::page(tx, tenant_id, &listing, &request, |a| order.field.key(a)).await?;
    Ok(AccountConnection::new(page, tenant_id, listing))
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

#[cfg(test)]
mod tests {
    use super::*;

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
