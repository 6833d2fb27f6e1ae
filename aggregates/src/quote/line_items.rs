//! The line items and the quote's discount, while the quote is a draft.
use rust_decimal::Decimal;
use uuid::Uuid;

use super::decide::{parse_reason, Ctx};
use super::facts::Facts;
use super::state::QuoteState;
use super::{LineItem, QuoteEvent, Unit};
use crate::limits::{DESCRIPTION_MAX, PERCENT, QUANTITY, SKU_MAX, UNIT_PRICE};
use crate::{DomainError, Money, RuleCode, Text};

const MAX_LINES: usize = 200;
/// Quantity (`limits::QUANTITY`) and price bounds keep pricing exact (see `pricing`), far above
/// real orders.
const UNIT_PRICE_MAX_MINOR_UNITS: i64 = 1_000_000_000;

/// A line as `AddLineItem` names it, before validation.
pub(super) struct NewLine<'a> {
    pub line_id: Uuid,
    pub sku: &'a str,
    pub description: &'a str,
    pub quantity: Decimal,
    pub unit: Unit,
    pub unit_price: Decimal,
}

impl QuoteState {
    pub(super) fn add_line(&self, cx: &Ctx, new: NewLine) -> Result<Vec<QuoteEvent>, DomainError> {
        self.require_editable(cx.actor, "AddLineItem")?;
        let sku = Text::parse("sku", new.sku, SKU_MAX)?;
        let description = Text::parse("description", new.description, DESCRIPTION_MAX)?;
        let quantity = QUANTITY.check("quantity", new.quantity)?;
        let unit_price = self.parse_unit_price(new.unit_price)?;
        if self.lines.iter().any(|l| l.line_id == new.line_id) {
            return Err(DomainError::rule(
                RuleCode::DuplicateLineId,
                "the quote already has a line with this id",
            ));
        }
        if self.lines.len() >= MAX_LINES {
            return Err(DomainError::rule(
                RuleCode::TooManyLines,
                format!("a quote has at most {MAX_LINES} lines"),
            ));
        }
        Ok(vec![QuoteEvent::LineItemAdded {
            line_id: new.line_id,
            sku,
            description,
            quantity,
            unit: new.unit,
            unit_price,
            volume_discount_percent: self.volume_discount(cx.facts, quantity)?,
        }])
    }

    pub(super) fn change_line(
        &self,
        cx: &Ctx,
        line_id: Uuid,
        quantity: Option<Decimal>,
        unit_price: Option<Decimal>,
        description: Option<String>,
    ) -> Result<Vec<QuoteEvent>, DomainError> {
        self.require_editable(cx.actor, "ChangeLineItem")?;
        if quantity.is_none() && unit_price.is_none() && description.is_none() {
            return Err(DomainError::invalid(
                "body",
                "give at least one field to change",
            ));
        }
        let quantity = quantity
            .map(|q| QUANTITY.check("quantity", q))
            .transpose()?;
        let unit_price = unit_price.map(|p| self.parse_unit_price(p)).transpose()?;
        let description = description
            .map(|d| Text::parse("description", &d, DESCRIPTION_MAX))
            .transpose()?;
        let line = self.line(line_id)?;
        // Values equal to the current ones are dropped, so a retried change records nothing.
        let quantity = quantity.filter(|q| *q != line.quantity);
        let unit_price = unit_price.filter(|p| *p != line.unit_price);
        let description = description.filter(|d| *d != line.description);
        if quantity.is_none() && unit_price.is_none() && description.is_none() {
            return Ok(vec![]);
        }
        let volume_discount_percent = match quantity {
            Some(q) => self.volume_discount(cx.facts, q)?,
            None => line.volume_discount_percent,
        };
        Ok(vec![QuoteEvent::LineItemChanged {
            line_id,
            quantity,
            unit_price,
            description,
            volume_discount_percent,
        }])
    }

    pub(super) fn remove_line(
        &self,
        cx: &Ctx,
        line_id: Uuid,
    ) -> Result<Vec<QuoteEvent>, DomainError> {
        self.require_editable(cx.actor, "RemoveLineItem")?;
        self.line(line_id)?;
        Ok(vec![QuoteEvent::LineItemRemoved { line_id }])
    }

    pub(super) fn set_discount(
        &self,
        cx: &Ctx,
        percent: Decimal,
        reason: &str,
    ) -> Result<Vec<QuoteEvent>, DomainError> {
        self.require_editable(cx.actor, "SetQuoteDiscount")?;
        let percent = PERCENT.check("percent", percent)?;
        let reason = parse_reason(reason)?;
        Ok(vec![QuoteEvent::QuoteDiscountSet { percent, reason }])
    }

    fn line(&self, line_id: Uuid) -> Result<&LineItem, DomainError> {
        self.lines
            .iter()
            .find(|l| l.line_id == line_id)
            .ok_or_else(|| {
                DomainError::rule(RuleCode::UnknownLine, "the quote has no line with this id")
            })
    }

    /// Within `limits::UNIT_PRICE` (400), then within the quote's currency: its decimals and
    /// at most `UNIT_PRICE_MAX_MINOR_UNITS` of its minor unit (422).
    fn parse_unit_price(&self, unit_price: Decimal) -> Result<Decimal, DomainError> {
        let Money { amount, .. } =
            Money::parse_amount("unit_price", unit_price, &UNIT_PRICE, &self.currency)?;
        let max = Decimal::new(UNIT_PRICE_MAX_MINOR_UNITS, self.currency.minor_unit());
        if amount > max {
            return Err(DomainError::rule(
                RuleCode::UnitPriceTooHigh,
                format!(
                    "a unit price in {} is at most {max}",
                    self.currency.as_str()
                ),
            ));
        }
        Ok(amount)
    }

    /// The volume discount the account's tier (as drafted) gives this quantity, clamped to
    /// 0..=100 so a misconfigured table cannot make a line negative.
    fn volume_discount(&self, facts: &Facts, quantity: Decimal) -> Result<Decimal, DomainError> {
        let percent = facts.policy()?.volume_discount(self.tier, quantity);
        Ok(percent.clamp(Decimal::ZERO, Decimal::ONE_HUNDRED))
    }
}
