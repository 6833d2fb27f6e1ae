//! `read.quotes` and `read.quote_lines`: one row per quote and one per line item.
//!
//! Totals are never computed differently from the aggregate: while a quote is a draft they are
//! repriced after every line or discount change with the aggregate's own pricing
//! ([`aggregates::quote::pricing::quote_totals`], exact, rounded half-even once at the end);
//! from submission on they are the totals the events carry.
use aggregates::quote::pricing::{quote_totals, LinePrice};
use aggregates::quote::{Quote, QuoteEvent, QuoteTotals};
use aggregates::CurrencyCode;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use event_store::StoredEvent;
use rust_decimal::Decimal;
use sqlx::postgres::PgArguments;
use sqlx::query::Query;
use sqlx::{PgConnection, Postgres};
use uuid::Uuid;

use crate::read_model::ReadModel;
use crate::stamp::{decode, one_row, Stamp};
use crate::ProjectionError;

/// Maintains `read.quotes` and `read.quote_lines` from Quote events. Replayable: see
/// [`Projection`].
#[derive(Debug, Clone, Copy, Default)]
pub struct QuotesProjection;

#[async_trait]
impl ReadModel for QuotesProjection {
    const NAME: &'static str = "quotes";
    const TABLES: &'static [&'static str] = &["quotes", "quote_lines"];
    type Aggregate = Quote;

    fn decode(event: &StoredEvent) -> Result<QuoteEvent, ProjectionError> {
        Ok(decode::<QuoteEvent>(event)?.upcast(&event.event_version))
    }

    async fn apply_change(
        &self,
        conn: &mut PgConnection,
        stamp: &Stamp,
        event: &StoredEvent,
        change: QuoteEvent,
    ) -> Result<(), ProjectionError> {
        use QuoteEvent as E;
        match &change {
            E::QuoteDrafted {
                account_id,
                title,
                currency,
                tier,
                valid_until,
            } => {
                let drafted = Drafted {
                    account_id: *account_id,
                    title: title.as_str(),
                    currency,
                    tier: tier.as_str(),
                    valid_until: *valid_until,
                };
                return draft(conn, stamp, &drafted).await;
            }
            E::LineItemAdded { .. } | E::LineItemChanged { .. } | E::LineItemRemoved { .. } => {
                change_line(conn, stamp, &change, event).await?;
                return reprice(conn, stamp, event).await;
            }
            E::QuoteDiscountSet { percent, reason } => {
                let set = "update quotes set discount_percent = $2, discount_reason = $3 \
                           where id = $1";
                let done = sqlx::query(set)
                    .bind(stamp.id)
                    .bind(*percent)
                    .bind(reason.as_str())
                    .execute(&mut *conn)
                    .await?;
                one_row(done, event, "quote")?;
                return reprice(conn, stamp, event).await;
            }
            _ => {}
        }
        let done = status_query(stamp, &change).execute(conn).await?;
        one_row(done, event, "quote")
    }
}

type PgQuery<'q> = Query<'q, Postgres, PgArguments>;

/// An update of the given columns that also stamps the row; `$1`..`$4` are the stamp, the
/// totals are `$5`..`$8` where the change sets them, its own values follow.
macro_rules! stamped {
    ($set:literal) => {
        concat!(
            "update quotes set ",
            $set,
            ", subtotal = coalesce($5, subtotal), line_discounts = coalesce($6, line_discounts), \
             quote_discount = coalesce($7, quote_discount), total = coalesce($8, total), \
             version = $2, updated_at = $3, updated_by = $4 where id = $1"
        )
    };
}

struct Drafted<'a> {
    account_id: Uuid,
    title: &'a str,
    currency: &'a CurrencyCode,
    tier: &'a str,
    valid_until: DateTime<Utc>,
}

/// Drafting (re)writes the quote's row and drops any lines left from an earlier run, so a
/// rebuild over existing rows ends where one over empty tables would.
async fn draft(
    conn: &mut PgConnection,
    stamp: &Stamp,
    drafted: &Drafted<'_>,
) -> Result<(), ProjectionError> {
    sqlx::query("delete from quote_lines where quote_id = $1")
        .bind(stamp.id)
        .execute(&mut *conn)
        .await?;
    let zero = quote_totals([], Decimal::ZERO, drafted.currency);
    sqlx::query(
        "insert into quotes (id, tenant_id, account_id, title, currency, tier, status, \
             valid_until, subtotal, line_discounts, quote_discount, total, discount_percent, \
             version, created_at, created_by, updated_at, updated_by) \
         values ($1, $5, $6, $7, $8, $9, 'Draft', $10, $11, $11, $11, $11, 0, $2, $3, $4, $3, $4) \
         on conflict (id) do update set tenant_id = excluded.tenant_id, \
             account_id = excluded.account_id, title = excluded.title, \
             currency = excluded.currency, tier = excluded.tier, status = excluded.status, \
             valid_until = excluded.valid_until, subtotal = excluded.subtotal, \
             line_discounts = excluded.line_discounts, quote_discount = excluded.quote_discount, \
             total = excluded.total, discount_percent = 0, discount_reason = null, \
             needs_approval = null, approval_id = null, submissions = 0, submitted_at = null, \
             submitted_by = null, approved_at = null, rejected_at = null, \
             rejection_reason = null, sent_at = null, sent_by = null, accepted_at = null, \
             accepted_by = null, declined_at = null, declined_by = null, withdrawn_at = null, \
             withdrawn_by = null, expired_at = null, closing_reason = null, \
             version = excluded.version, created_at = excluded.created_at, \
             created_by = excluded.created_by, updated_at = excluded.updated_at, \
             updated_by = excluded.updated_by",
    )
    .bind(stamp.id)
    .bind(stamp.version)
    .bind(stamp.at)
    .bind(stamp.by)
    .bind(stamp.tenant_id)
    .bind(drafted.account_id)
    .bind(drafted.title)
    .bind(drafted.currency.as_str())
    .bind(drafted.tier)
    .bind(drafted.valid_until)
    .bind(zero.total.amount)
    .execute(conn)
    .await?;
    Ok(())
}

/// The line columns pricing needs, as stored.
#[derive(sqlx::FromRow)]
struct StoredLine {
    quantity: Decimal,
    unit_price: Decimal,
    volume_discount_percent: Decimal,
}

impl StoredLine {
    fn price(&self) -> LinePrice {
        LinePrice {
            quantity: self.quantity,
            unit_price: self.unit_price,
            volume_discount_percent: self.volume_discount_percent,
        }
    }
}

async fn change_line(
    conn: &mut PgConnection,
    stamp: &Stamp,
    change: &QuoteEvent,
    event: &StoredEvent,
) -> Result<(), ProjectionError> {
    use QuoteEvent as E;
    match change {
        E::LineItemAdded {
            line_id,
            sku,
            description,
            quantity,
            unit_price,
            volume_discount_percent,
        } => {
            let price = LinePrice {
                quantity: *quantity,
                unit_price: *unit_price,
                volume_discount_percent: *volume_discount_percent,
            };
            let line = NewLine {
                line_id: *line_id,
                sku: sku.as_str(),
                description: description.as_str(),
                price,
            };
            add_line(conn, stamp, &line).await
        }
        E::LineItemChanged {
            line_id,
            quantity,
            unit_price,
            description,
            volume_discount_percent,
        } => {
            let stored = stored_line(conn, stamp.id, *line_id, event).await?;
            let price = LinePrice {
                quantity: quantity.unwrap_or(stored.quantity),
                unit_price: unit_price.unwrap_or(stored.unit_price),
                volume_discount_percent: *volume_discount_percent,
            };
            let description = description.as_ref().map(|d| d.as_str());
            update_line(conn, stamp.id, *line_id, &price, description).await
        }
        E::LineItemRemoved { line_id } => {
            let done = sqlx::query("delete from quote_lines where quote_id = $1 and line_id = $2")
                .bind(stamp.id)
                .bind(line_id)
                .execute(conn)
                .await?;
            one_row(done, event, "quote line")
        }
        _ => Err(ProjectionError::inconsistent(event, "not a line event")),
    }
}

struct NewLine<'a> {
    line_id: Uuid,
    sku: &'a str,
    description: &'a str,
    price: LinePrice,
}

/// A new line goes after every line the quote ever had (positions are never reused).
async fn add_line(
    conn: &mut PgConnection,
    stamp: &Stamp,
    line: &NewLine<'_>,
) -> Result<(), ProjectionError> {
    sqlx::query(
        "insert into quote_lines (quote_id, line_id, tenant_id, position, sku, description, \
             quantity, unit_price, volume_discount_percent, line_total) \
         select $1, $2, $3, coalesce(max(position), 0) + 1, $4, $5, $6, $7, $8, $9 \
         from quote_lines where quote_id = $1",
    )
    .bind(stamp.id)
    .bind(line.line_id)
    .bind(stamp.tenant_id)
    .bind(line.sku)
    .bind(line.description)
    .bind(line.price.quantity)
    .bind(line.price.unit_price)
    .bind(line.price.volume_discount_percent)
    .bind(line.price.net())
    .execute(conn)
    .await?;
    Ok(())
}

async fn stored_line(
    conn: &mut PgConnection,
    quote_id: Uuid,
    line_id: Uuid,
    event: &StoredEvent,
) -> Result<StoredLine, ProjectionError> {
    sqlx::query_as(
        "select quantity, unit_price, volume_discount_percent from quote_lines \
         where quote_id = $1 and line_id = $2",
    )
    .bind(quote_id)
    .bind(line_id)
    .fetch_optional(conn)
    .await?
    .ok_or_else(|| ProjectionError::inconsistent(event, "no such quote line row"))
}

async fn update_line(
    conn: &mut PgConnection,
    quote_id: Uuid,
    line_id: Uuid,
    price: &LinePrice,
    description: Option<&str>,
) -> Result<(), ProjectionError> {
    sqlx::query(
        "update quote_lines set quantity = $3, unit_price = $4, \
             volume_discount_percent = $5, line_total = $6, \
             description = coalesce($7, description) \
         where quote_id = $1 and line_id = $2",
    )
    .bind(quote_id)
    .bind(line_id)
    .bind(price.quantity)
    .bind(price.unit_price)
    .bind(price.volume_discount_percent)
    .bind(price.net())
    .bind(description)
    .execute(conn)
    .await?;
    Ok(())
}

/// Prices the draft as it now stands, exactly as the aggregate will at submission, and stamps
/// the quote with the event.
async fn reprice(
    conn: &mut PgConnection,
    stamp: &Stamp,
    event: &StoredEvent,
) -> Result<(), ProjectionError> {
    let (currency, discount): (String, Decimal) =
        sqlx::query_as("select currency, discount_percent from quotes where id = $1")
            .bind(stamp.id)
            .fetch_optional(&mut *conn)
            .await?
            .ok_or_else(|| ProjectionError::inconsistent(event, "no such quote row"))?;
    let currency = CurrencyCode::parse("currency", &currency)
        .map_err(|_| ProjectionError::inconsistent(event, "the quote's currency is invalid"))?;
    let lines: Vec<StoredLine> = sqlx::query_as(
        "select quantity, unit_price, volume_discount_percent from quote_lines \
         where quote_id = $1",
    )
    .bind(stamp.id)
    .fetch_all(&mut *conn)
    .await?;
    let totals = quote_totals(lines.iter().map(StoredLine::price), discount, &currency);
    let done = with_totals(stamped_query(stamped!("status = status"), stamp), &totals)
        .execute(conn)
        .await?;
    one_row(done, event, "quote")
}

fn stamped_query<'q>(sql: &'static str, stamp: &Stamp) -> PgQuery<'q> {
    sqlx::query(sql)
        .bind(stamp.id)
        .bind(stamp.version)
        .bind(stamp.at)
        .bind(stamp.by)
}

fn with_totals<'q>(query: PgQuery<'q>, totals: &QuoteTotals) -> PgQuery<'q> {
    query
        .bind(totals.subtotal.amount)
        .bind(totals.line_discounts.amount)
        .bind(totals.quote_discount.amount)
        .bind(totals.total.amount)
}

/// The totals stay as they are.
fn unpriced<'q>(query: PgQuery<'q>) -> PgQuery<'q> {
    let none: Option<Decimal> = None;
    query.bind(none).bind(none).bind(none).bind(none)
}

/// Changes of status (and what they record about who and when); `$9` on are their own values.
fn status_query<'q>(stamp: &Stamp, change: &'q QuoteEvent) -> PgQuery<'q> {
    use QuoteEvent as E;
    let q = |sql| stamped_query(sql, stamp);
    match change {
        E::QuoteSubmitted {
            submission,
            requester,
            totals,
            discount_percent,
            needs_approval,
            ..
        } => with_totals(
            q(stamped!(
                "status = 'PendingApproval', submissions = $9, submitted_by = $10, \
                 submitted_at = $3, discount_percent = $11, needs_approval = $12, \
                 approval_id = null, approved_at = null, rejected_at = null, \
                 rejection_reason = null"
            )),
            totals,
        )
        .bind(i32::try_from(*submission).unwrap_or(i32::MAX))
        .bind(requester)
        .bind(discount_percent)
        .bind(needs_approval),
        E::QuoteApproved { approval_id } => unpriced(q(stamped!(
            "status = 'Approved', approval_id = $9, approved_at = $3"
        )))
        .bind(approval_id),
        E::QuoteRejected {
            approval_id,
            reason,
        } => unpriced(q(stamped!(
            "status = 'Rejected', approval_id = $9, rejected_at = $3, rejection_reason = $10"
        )))
        .bind(approval_id)
        .bind(reason.as_str()),
        E::QuoteRevised {} => unpriced(q(stamped!("status = 'Draft'"))),
        E::QuoteSent {} => unpriced(q(stamped!("status = 'Sent', sent_at = $3, sent_by = $4"))),
        E::QuoteAccepted { totals, .. } => with_totals(
            q(stamped!(
                "status = 'Accepted', accepted_at = $3, accepted_by = $4"
            )),
            totals,
        ),
        E::QuoteDeclined { reason } => unpriced(q(stamped!(
            "status = 'Declined', declined_at = $3, declined_by = $4, closing_reason = $9"
        )))
        .bind(reason.as_str()),
        E::QuoteWithdrawn { reason } => unpriced(q(stamped!(
            "status = 'Withdrawn', withdrawn_at = $3, withdrawn_by = $4, closing_reason = $9"
        )))
        .bind(reason.as_str()),
        E::QuoteExpired {} => unpriced(q(stamped!("status = 'Expired', expired_at = $3"))),
        // `apply` routes drafting and line and discount changes elsewhere; an unchanged row
        // (zero rows matched below) would be reported as inconsistent.
        E::QuoteDrafted { .. }
        | E::LineItemAdded { .. }
        | E::LineItemChanged { .. }
        | E::LineItemRemoved { .. }
        | E::QuoteDiscountSet { .. } => sqlx::query("update quotes set id = id where false"),
    }
}
