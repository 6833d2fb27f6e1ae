//! `contracts` and `contract(id)` over `read.contracts` and `read.contract_versions`.
use async_graphql::{ComplexObject, Context, Enum, InputObject, SimpleObject};
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;

use super::list::{self, connection, Key, Listing, PageRequest};
use super::loaders::children_of;
use super::scope::{scoped_by_id, AccountScope};
use super::stored::stored_enum;
use super::OrderDirection;
use crate::{QueryError, TenantTx};

stored_enum!(
    /// Where a contract is in its lifecycle.
    ContractStatus,
    "read.contracts.status",
    [Draft, Negotiation, PendingApproval, Approved, Active, Expired, Terminated, Cancelled]
);

const COLUMNS: &str = "id, account_id, quote_id, title, status, value, currency, start_date, \
    end_date, terms, version, term, customer_signatory, customer_signatory_email, \
    customer_signed_at, vendor_signatory, vendor_signatory_email, vendor_signed_at, approval_id, \
    activated_on, terminated_reason, effective_date, expired_on, cancelled_reason, created_at, \
    created_by, updated_at, updated_by, stream_version";

#[derive(Debug, Clone, SimpleObject, sqlx::FromRow)]
#[graphql(complex)]
pub struct Contract {
    pub id: Uuid,
    pub account_id: Uuid,
    /// The accepted quote it was drafted from, if any.
    pub quote_id: Option<Uuid>,
    pub title: String,
    #[sqlx(try_from = "String")]
    pub status: ContractStatus,
    pub value: Decimal,
    pub currency: String,
    pub start_date: NaiveDate,
    pub end_date: NaiveDate,
    pub terms: String,
    /// The contract's version: 1 as drafted, one more per amendment.
    pub version: i32,
    /// The term it is in: 1, then one more per renewal.
    pub term: i32,
    /// Name and e-mail `[erased]` once the account's contact data is forgotten.
    pub customer_signatory: Option<String>,
    pub customer_signatory_email: Option<String>,
    pub customer_signed_at: Option<DateTime<Utc>>,
    /// Name and e-mail `[erased]` once the user who signed is forgotten (or, when a process
    /// recorded the signature, the account's contact data).
    pub vendor_signatory: Option<String>,
    pub vendor_signatory_email: Option<String>,
    pub vendor_signed_at: Option<DateTime<Utc>>,
    /// The approval that last decided it.
    pub approval_id: Option<Uuid>,
    pub activated_on: Option<NaiveDate>,
    pub terminated_reason: Option<String>,
    /// When a termination takes effect.
    pub effective_date: Option<NaiveDate>,
    /// Why a contract that never became active was abandoned (`CancelContract`).
    pub cancelled_reason: Option<String>,
    pub expired_on: Option<NaiveDate>,
    pub created_at: DateTime<Utc>,
    pub created_by: Option<Uuid>,
    pub updated_at: DateTime<Utc>,
    pub updated_by: Option<Uuid>,
    /// The last event of the contract's stream this row reflects (what `X-Await-Version` and
    /// `If-Match` count), not the contract's own `version`.
    pub stream_version: i64,
    /// Children read with the row, for a subscription's message (which has no loader).
    #[graphql(skip)]
    #[sqlx(skip)]
    pub preloaded: Option<Vec<ContractVersion>>,
}

/// What the terms and value were at one contract version, and who made it.
#[derive(Debug, Clone, SimpleObject, sqlx::FromRow)]
pub struct ContractVersion {
    pub version: i32,
    pub terms: String,
    pub value: Decimal,
    pub amended_at: DateTime<Utc>,
    pub amended_by: Option<Uuid>,
}

#[ComplexObject]
impl Contract {
    /// Every version, the draft (1) first.
    async fn versions(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<ContractVersion>> {
        match &self.preloaded {
            Some(children) => Ok(children.clone()),
            None => children_of(ctx, self.id).await,
        }
    }
}

#[derive(Debug, Clone, Default, InputObject)]
pub struct ContractFilter {
    pub status: Option<ContractStatus>,
    pub account_id: Option<Uuid>,
    /// Contracts ending on or before this date (renewals due).
    pub ends_by: Option<NaiveDate>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Enum)]
pub enum ContractOrderField {
    #[default]
    CreatedAt,
    EndDate,
    Value,
}

/// Sorted by `field` in `direction`, ties broken by id.
#[derive(Debug, Clone, Copy, Default, InputObject)]
pub struct ContractOrder {
    #[graphql(default)]
    pub field: ContractOrderField,
    #[graphql(default)]
    pub direction: OrderDirection,
}

impl ContractOrderField {
    fn column(self) -> &'static str {
        match self {
            Self::CreatedAt => "created_at",
            Self::EndDate => "end_date",
            Self::Value => "value",
        }
    }

    fn key(self, contract: &Contract) -> (Key, Uuid) {
        let key = match self {
            Self::CreatedAt => Key::Time(contract.created_at),
            Self::EndDate => Key::Date(contract.end_date),
            Self::Value => Key::Amount(contract.value),
        };
        (key, contract.id)
    }
}

pub struct ContractListing {
    filter: ContractFilter,
    scope: AccountScope,
}

impl Listing for ContractListing {
    type Node = Contract;
    const FROM: &'static str = "read.contracts";
    const COLUMNS: &'static str = COLUMNS;

    fn push_filter<'a>(&'a self, query: &mut QueryBuilder<'a, Postgres>, tenant_id: Uuid) {
        query.push(" where tenant_id = ").push_bind(tenant_id);
        self.scope.push(query, "account_id");
        if let Some(status) = self.filter.status {
            query.push(" and status = ").push_bind(status.as_stored());
        }
        if let Some(account_id) = self.filter.account_id {
            query.push(" and account_id = ").push_bind(account_id);
        }
        if let Some(ends_by) = self.filter.ends_by {
            query.push(" and end_date <= ").push_bind(ends_by);
        }
    }
}

connection!(ContractConnection, ContractEdge, Contract, ContractListing);

pub async fn page(
    tx: &TenantTx,
    tenant_id: Uuid,
    scope: AccountScope,
    paging: (Option<i32>, Option<String>),
    filter: Option<ContractFilter>,
    order: Option<ContractOrder>,
) -> Result<ContractConnection, QueryError> {
    let order = order.unwrap_or_default();
    let request = PageRequest::new(paging.0, paging.1, order.field.column(), order.direction)?;
    let listing = ContractListing {
        filter: filter.unwrap_or_default(),
        scope,
    };
    let page = list::page(tx, tenant_id, &listing, &request, |c| order.field.key(c)).await?;
    Ok(ContractConnection::new(page, tenant_id, listing))
}

/// One contract the caller may see; another account's contract is as absent as a missing one.
pub async fn by_id(
    tx: &TenantTx,
    tenant_id: Uuid,
    scope: AccountScope,
    id: Uuid,
) -> Result<Option<Contract>, QueryError> {
    let select_from = format!("select {COLUMNS} from read.contracts");
    scoped_by_id(tx, &select_from, "account_id", tenant_id, scope, id).await
}
