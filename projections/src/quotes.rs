//! `read.quotes` and `read.quote_lines`: one row per quote and one per line item.
//!
//! Totals are never computed differently from the aggregate: while a quote is a draft they are
//! repriced after every line or discount change with the aggregate's own pricing
//! ([`aggregates::quote::pricing::quote_totals`], exact, rounded half-even once at the end);
//! from submission on they are the totals the events carry.
use aggregates::quote::pricing::{quote_totals, LinePrice};
use aggregates::quote::{Quote, QuoteEvent, QuoteTotals};
use aggregates::CurrencyCode;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use uuid::Uuid;

use crate::read_model::{existing, Inconsistent, ReadModel};
use crate::rows::{stored, Row, WithChildren};
use crate::stamp::Stamp;

/// Maintains `read.quotes` and `read.quote_lines` from Quote events. Replayable: see
/// [`ReadModel`].
#[derive(Debug, Clone, Copy, Default)]
pub struct QuotesProjection;

/// A row of `read.quotes`.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub(crate) struct QuoteRow {
    id: Uuid,
    tenant_id: Uuid,
    account_id: Uuid,
    title: String,
    currency: String,
    tier: String,
    status: String,
    valid_until: DateTime<Utc>,
    subtotal: Decimal,
    line_discounts: Decimal,
    quote_discount: Decimal,
    total: Decimal,
    discount_percent: Decimal,
    discount_reason: Option<String>,
    needs_approval: Option<bool>,
    approval_id: Option<Uuid>,
    submissions: i32,
    submitted_at: Option<DateTime<Utc>>,
    submitted_by: Option<Uuid>,
    approved_at: Option<DateTime<Utc>>,
    rejected_at: Option<DateTime<Utc>>,
    rejection_reason: Option<String>,
    sent_at: Option<DateTime<Utc>>,
    sent_by: Option<Uuid>,
    accepted_at: Option<DateTime<Utc>>,
    accepted_by: Option<Uuid>,
    declined_at: Option<DateTime<Utc>>,
    declined_by: Option<Uuid>,
    withdrawn_at: Option<DateTime<Utc>>,
    withdrawn_by: Option<Uuid>,
    expired_at: Option<DateTime<Utc>>,
    closing_reason: Option<String>,
    version: i64,
    created_at: DateTime<Utc>,
    created_by: Option<Uuid>,
    updated_at: DateTime<Utc>,
    updated_by: Option<Uuid>,
}

impl Row for QuoteRow {
    const TABLE: &'static str = "quotes";
    const ENTITY: &'static str = "id";
    const KEY: &'static str = "id";
    type Key = ();

    fn key(&self) {}
}

/// A row of `read.quote_lines`.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub(crate) struct LineRow {
    quote_id: Uuid,
    line_id: Uuid,
    tenant_id: Uuid,
    position: i32,
    sku: String,
    description: String,
    quantity: Decimal,
    /// `aggregates::quote::Unit`'s variant name; null in rows a projector older than migration
    /// 0030 wrote (those lines count pieces).
    unit: Option<String>,
    unit_price: Decimal,
    volume_discount_percent: Decimal,
    line_total: Decimal,
}

impl Row for LineRow {
    const TABLE: &'static str = "quote_lines";
    const ENTITY: &'static str = "quote_id";
    const KEY: &'static str = "quote_id, line_id";
    type Key = Uuid;

    fn key(&self) -> Uuid {
        self.line_id
    }
}

impl LineRow {
    fn price(&self) -> LinePrice {
        LinePrice {
            quantity: self.quantity,
            unit_price: self.unit_price,
            volume_discount_percent: self.volume_discount_percent,
        }
    }

    fn set_price(&mut self, price: &LinePrice) {
        self.quantity = price.quantity;
        self.unit_price = price.unit_price;
        self.volume_discount_percent = price.volume_discount_percent;
        self.line_total = price.net();
    }
}

type QuoteRows = WithChildren<QuoteRow, LineRow>;

impl ReadModel for QuotesProjection {
    const NAME: &'static str = "quotes";
    type Aggregate = Quote;
    type Entity = QuoteRows;

    fn fold(rows: &mut QuoteRows, stamp: &Stamp, change: QuoteEvent) -> Result<(), Inconsistent> {
        use QuoteEvent as E;
        if let E::QuoteDrafted { .. } = change {
            *rows = drafted(stamp, change)?;
            return Ok(());
        }
        let quote = existing(&mut rows.row, "no such quote row")?;
        match change {
            E::QuoteDrafted { .. } => unreachable!("handled above"),
            E::LineItemAdded { .. } | E::LineItemChanged { .. } | E::LineItemRemoved { .. } => {
                change_line(&mut rows.children, stamp, change)?;
                reprice(quote, &rows.children)?;
            }
            E::QuoteDiscountSet { percent, reason } => {
                quote.discount_percent = percent;
                quote.discount_reason = Some(reason.as_str().to_owned());
                reprice(quote, &rows.children)?;
            }
            status => quote.change_status(stamp, status),
        }
        quote.version = stamp.version;
        quote.updated_at = stamp.at;
        quote.updated_by = stamp.by;
        Ok(())
    }
}

/// Drafting (re)writes the quote's row, with no lines.
fn drafted(stamp: &Stamp, change: QuoteEvent) -> Result<QuoteRows, Inconsistent> {
    let QuoteEvent::QuoteDrafted {
        account_id,
        title,
        currency,
        tier,
        valid_until,
    } = change
    else {
        unreachable!("called for drafting only")
    };
    let zero = quote_totals([], Decimal::ZERO, &currency).total.amount;
    let row = QuoteRow {
        id: stamp.id,
        tenant_id: stamp.tenant_id,
        account_id,
        title: title.as_str().to_owned(),
        currency: currency.as_str().to_owned(),
        tier: tier.as_str().to_owned(),
        status: "Draft".to_owned(),
        valid_until: stored(valid_until),
        subtotal: zero,
        line_discounts: zero,
        quote_discount: zero,
        total: zero,
        discount_percent: Decimal::ZERO,
        discount_reason: None,
        needs_approval: None,
        approval_id: None,
        submissions: 0,
        submitted_at: None,
        submitted_by: None,
        approved_at: None,
        rejected_at: None,
        rejection_reason: None,
        sent_at: None,
        sent_by: None,
        accepted_at: None,
        accepted_by: None,
        declined_at: None,
        declined_by: None,
        withdrawn_at: None,
        withdrawn_by: None,
        expired_at: None,
        closing_reason: None,
        version: stamp.version,
        created_at: stamp.at,
        created_by: stamp.by,
        updated_at: stamp.at,
        updated_by: stamp.by,
    };
    Ok(WithChildren {
        row: Some(row),
        children: Vec::new(),
    })
}

fn change_line(
    lines: &mut Vec<LineRow>,
    stamp: &Stamp,
    change: QuoteEvent,
) -> Result<(), Inconsistent> {
    use QuoteEvent as E;
    match change {
        E::LineItemAdded {
            line_id,
            sku,
            description,
            quantity,
            unit,
            unit_price,
            volume_discount_percent,
        } => {
            if lines.iter().any(|line| line.line_id == line_id) {
                return Err(Inconsistent("the quote line exists already"));
            }
            // A new line goes after every line the quote has.
            let position = lines.iter().map(|line| line.position).max().unwrap_or(0) + 1;
            let price = LinePrice {
                quantity,
                unit_price,
                volume_discount_percent,
            };
            lines.push(LineRow {
                quote_id: stamp.id,
                line_id,
                tenant_id: stamp.tenant_id,
                position,
                sku: sku.as_str().to_owned(),
                description: description.as_str().to_owned(),
                quantity,
                unit: Some(unit.as_str().to_owned()),
                unit_price,
                volume_discount_percent,
                line_total: price.net(),
            });
        }
        E::LineItemChanged {
            line_id,
            quantity,
            unit_price,
            description,
            volume_discount_percent,
        } => {
            let line = lines
                .iter_mut()
                .find(|line| line.line_id == line_id)
                .ok_or(Inconsistent("no such quote line row"))?;
            let price = LinePrice {
                quantity: quantity.unwrap_or(line.quantity),
                unit_price: unit_price.unwrap_or(line.unit_price),
                volume_discount_percent,
            };
            line.set_price(&price);
            if let Some(description) = description {
                line.description = description.as_str().to_owned();
            }
        }
        E::LineItemRemoved { line_id } => {
            let at = lines
                .iter()
                .position(|line| line.line_id == line_id)
                .ok_or(Inconsistent("no such quote line row"))?;
            lines.remove(at);
        }
        _ => return Err(Inconsistent("not a line event")),
    }
    Ok(())
}

/// Prices the draft as it now stands, exactly as the aggregate will at submission.
fn reprice(quote: &mut QuoteRow, lines: &[LineRow]) -> Result<(), Inconsistent> {
    let currency = CurrencyCode::parse("currency", &quote.currency)
        .map_err(|_| Inconsistent("the quote's currency is invalid"))?;
    let totals = quote_totals(
        lines.iter().map(LineRow::price),
        quote.discount_percent,
        &currency,
    );
    quote.set_totals(&totals);
    Ok(())
}

impl QuoteRow {
    fn set_totals(&mut self, totals: &QuoteTotals) {
        self.subtotal = totals.subtotal.amount;
        self.line_discounts = totals.line_discounts.amount;
        self.quote_discount = totals.quote_discount.amount;
        self.total = totals.total.amount;
    }

    /// Changes of status, and what they record about who and when.
    fn change_status(&mut self, stamp: &Stamp, change: QuoteEvent) {
        use QuoteEvent as E;
        let (at, by) = (Some(stamp.at), stamp.by);
        let status = match change {
            E::QuoteSubmitted {
                submission,
                requester,
                totals,
                discount_percent,
                needs_approval,
                ..
            } => {
                self.set_totals(&totals);
                self.submissions = i32::try_from(submission).unwrap_or(i32::MAX);
                self.submitted_by = Some(requester);
                self.submitted_at = at;
                self.discount_percent = discount_percent;
                self.needs_approval = Some(needs_approval);
                self.approval_id = None;
                self.approved_at = None;
                self.rejected_at = None;
                self.rejection_reason = None;
                "PendingApproval"
            }
            E::QuoteApproved { approval_id } => {
                self.approval_id = approval_id;
                self.approved_at = at;
                "Approved"
            }
            E::QuoteRejected {
                approval_id,
                reason,
            } => {
                self.approval_id = Some(approval_id);
                self.rejected_at = at;
                self.rejection_reason = Some(reason.as_str().to_owned());
                "Rejected"
            }
            E::QuoteRevised {} => "Draft",
            E::QuoteSent {} => {
                (self.sent_at, self.sent_by) = (at, by);
                "Sent"
            }
            E::QuoteAccepted { totals, .. } => {
                self.set_totals(&totals);
                (self.accepted_at, self.accepted_by) = (at, by);
                "Accepted"
            }
            E::QuoteDeclined { reason } => {
                (self.declined_at, self.declined_by) = (at, by);
                self.closing_reason = Some(reason.as_str().to_owned());
                "Declined"
            }
            E::QuoteWithdrawn { reason } => {
                (self.withdrawn_at, self.withdrawn_by) = (at, by);
                self.closing_reason = Some(reason.as_str().to_owned());
                "Withdrawn"
            }
            E::QuoteExpired {} => {
                self.expired_at = at;
                "Expired"
            }
            // `fold` routes drafting and line and discount changes elsewhere.
            E::QuoteDrafted { .. }
            | E::LineItemAdded { .. }
            | E::LineItemChanged { .. }
            | E::LineItemRemoved { .. }
            | E::QuoteDiscountSet { .. } => return,
        };
        status.clone_into(&mut self.status);
    }
}
