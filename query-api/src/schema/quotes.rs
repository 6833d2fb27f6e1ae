//! `quotes` and `quote(id)` over `read.quotes` and `read.quote_lines`.
use async_graphql::{ComplexObject, Context, Enum, InputObject, SimpleObject};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;

use super::list::{self, connection, Key, Listing, PageRequest};
use super::loaders::children_of;
use super::scope::{scoped_by_id, AccountScope};
use super::stored::stored_enum;
use super::{OrderDirection, Tier};
use crate::{QueryError, TenantTx};

stored_enum!(
    /// Where a quote is in its lifecycle.
    QuoteStatus,
    "read.quotes.status",
    [Draft, PendingApproval, Approved, Rejected, Sent, Accepted, Declined, Expired, Withdrawn]
);

stored_enum!(
    /// What a line's quantity counts.
    LineUnit,
    "read.quote_lines.unit",
    [Piece, Hour, Day, Month, Year, Seat, Kilogram, Metre, Litre]
);

const COLUMNS: &str = "id, account_id, title, currency, tier, status, valid_until, subtotal, \
    line_discounts, quote_discount, total, discount_percent, discount_reason, needs_approval, \
    approval_id, submissions, submitted_at, submitted_by, approved_at, rejected_at, \
    rejection_reason, sent_at, sent_by, accepted_at, accepted_by, declined_at, declined_by, \
    withdrawn_at, withdrawn_by, expired_at, closing_reason, version, created_at, created_by, \
    updated_at, updated_by";

/// A quote with its totals, in its currency's minor unit. While it is a draft the totals
/// follow its lines; from submission on they are the submitted (frozen) ones.
#[derive(Debug, Clone, SimpleObject, sqlx::FromRow)]
#[graphql(complex)]
pub struct Quote {
    pub id: Uuid,
    pub account_id: Uuid,
    pub title: String,
    pub currency: String,
    /// The account's tier when the quote was drafted (it chose the volume discounts).
    #[sqlx(try_from = "String")]
    pub tier: Tier,
    #[sqlx(try_from = "String")]
    pub status: QuoteStatus,
    pub valid_until: DateTime<Utc>,
    /// Gross sum of quantity × unit price over the lines, before any discount.
    pub subtotal: Decimal,
    /// What the volume discounts took off the lines.
    pub line_discounts: Decimal,
    /// What the quote-level discount took off the subtotal less the line discounts.
    pub quote_discount: Decimal,
    /// What the customer pays: subtotal − line discounts − quote discount.
    pub total: Decimal,
    /// The quote-level discount, 0 to 100.
    pub discount_percent: Decimal,
    pub discount_reason: Option<String>,
    /// As decided at the last submission.
    pub needs_approval: Option<bool>,
    /// The approval that decided the quote, if one was needed.
    pub approval_id: Option<Uuid>,
    pub submissions: i32,
    pub submitted_at: Option<DateTime<Utc>>,
    pub submitted_by: Option<Uuid>,
    pub approved_at: Option<DateTime<Utc>>,
    pub rejected_at: Option<DateTime<Utc>>,
    pub rejection_reason: Option<String>,
    pub sent_at: Option<DateTime<Utc>>,
    pub sent_by: Option<Uuid>,
    pub accepted_at: Option<DateTime<Utc>>,
    pub accepted_by: Option<Uuid>,
    pub declined_at: Option<DateTime<Utc>>,
    pub declined_by: Option<Uuid>,
    pub withdrawn_at: Option<DateTime<Utc>>,
    pub withdrawn_by: Option<Uuid>,
    pub expired_at: Option<DateTime<Utc>>,
    /// Why it was declined or withdrawn.
    pub closing_reason: Option<String>,
    /// The last event of the quote's stream this row reflects.
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub created_by: Option<Uuid>,
    pub updated_at: DateTime<Utc>,
    pub updated_by: Option<Uuid>,
    /// Children read with the row, for a subscription's message (which has no loader).
    #[graphql(skip)]
    #[sqlx(skip)]
    pub preloaded: Option<Vec<QuoteLine>>,
}

/// One line item.
#[derive(Debug, Clone, SimpleObject, sqlx::FromRow)]
pub struct QuoteLine {
    pub line_id: Uuid,
    /// Order of addition, from 1; removed lines leave gaps.
    pub position: i32,
    pub sku: String,
    pub description: String,
    pub quantity: Decimal,
    /// What the quantity counts (pieces for lines added before quotes had units).
    #[sqlx(try_from = "String")]
    pub unit: LineUnit,
    pub unit_price: Decimal,
    pub volume_discount_percent: Decimal,
    /// Quantity × unit price less the volume discount, exact (only the totals are rounded).
    pub line_total: Decimal,
}

#[ComplexObject]
impl Quote {
    /// The line items in the order they were added.
    async fn lines(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<QuoteLine>> {
        match &self.preloaded {
            Some(children) => Ok(children.clone()),
            None => children_of(ctx, self.id).await,
        }
    }
}

#[derive(Debug, Clone, Default, InputObject)]
pub struct QuoteFilter {
    pub status: Option<QuoteStatus>,
    pub account_id: Option<Uuid>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Enum)]
pub enum QuoteOrderField {
    #[default]
    CreatedAt,
    Total,
}

/// Sorted by `field` in `direction`, ties broken by id.
#[derive(Debug, Clone, Copy, Default, InputObject)]
pub struct QuoteOrder {
    #[graphql(default)]
    pub field: QuoteOrderField,
    #[graphql(default)]
    pub direction: OrderDirection,
}

impl QuoteOrderField {
    fn column(self) -> &'static str {
        match self {
            Self::CreatedAt => "created_at",
            Self::Total => "total",
        }
    }

    fn key(self, quote: &Quote) -> (Key, Uuid) {
        let key = match self {
            Self::CreatedAt => Key::Time(quote.created_at),
            Self::Total => Key::Amount(quote.total),
        };
        (key, quote.id)
    }
}

pub struct QuoteListing {
    filter: QuoteFilter,
    scope: AccountScope,
}

impl Listing for QuoteListing {
    type Node = Quote;
    const FROM: &'static str = "read.quotes";
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
    }
}

connection!(QuoteConnection, QuoteEdge, Quote, QuoteListing);

pub async fn page(
    tx: &TenantTx,
    tenant_id: Uuid,
    scope: AccountScope,
    paging: (Option<i32>, Option<String>),
    filter: Option<QuoteFilter>,
    order: Option<QuoteOrder>,
) -> Result<QuoteConnection, QueryError> {
    let order = order.unwrap_or_default();
    let request = PageRequest::new(paging.0, paging.1, order.field.column(), order.direction)?;
    let listing = QuoteListing {
        filter: filter.unwrap_or_default(),
        scope,
    };
    let page = list::page(tx, tenant_id, &listing, &request, |q| order.field.key(q)).await?;
    Ok(QuoteConnection::new(page, tenant_id, listing))
}

/// One quote the caller may see; another account's quote is as absent as a missing one.
pub async fn by_id(
    tx: &TenantTx,
    tenant_id: Uuid,
    scope: AccountScope,
    id: Uuid,
) -> Result<Option<Quote>, QueryError> {
    let select_from = format!("select {COLUMNS} from read.quotes");
    scoped_by_id(tx, &select_from, "account_id", tenant_id, scope, id).await
}
