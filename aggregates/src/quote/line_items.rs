//! The line items and the quote's discount, while the quote is a draft.
use rust_decimal::Decimal;
use uuid::Uuid;

use super::decide::{parse_reason, Ctx};
use super::facts::Facts;
use super::state::QuoteState;
use super::{LineItem, QuoteEvent};
use crate::limits::{DESCRIPTION_MAX, SKU_MAX};
use crate::{DomainError, Money, RuleCode, Text};

const MAX_LINES: usize = 200;
/// Quantity and price bounds keep pricing exact (see `pricing`), far above real orders.
const QUANTITY_MAX: Decimal = Decimal::from_parts(1_000_000, 0, 0, false, 0);
const QUANTITY_DECIMALS: u32 = 3;
const UNIT_PRICE_MAX_MINOR_UNITS: i64 = 1_000_000_000;
const PERCENT_DECIMALS: u32 = 2;

impl QuoteState {
    pub(super) fn add_line(
        &self,
        cx: &Ctx,
        line_id: Uuid,
        sku: &str,
        description: &str,
        quantity: Decimal,
        unit_price: Decimal,
    ) -> Result<Vec<QuoteEvent>, DomainError> {
        self.require_editable(cx.actor, "AddLineItem")?;
        let sku = Text::parse("sku", sku, SKU_MAX)?;
        let description = Text::parse("description", description, DESCRIPTION_MAX)?;
        let quantity = parse_quantity(quantity)?;
        let unit_price = self.parse_unit_price(unit_price)?;
        if self.lines.iter().any(|l| l.line_id == line_id) {
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
            line_id,
            sku,
            description,
            quantity,
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
        let quantity = quantity.map(parse_quantity).transpose()?;
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
        let percent = parse_percent("percent", percent)?;
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

    fn parse_unit_price(&self, unit_price: Decimal) -> Result<Decimal, DomainError> {
        let Money { amount, .. } = Money::parse_amount("unit_price", unit_price, &self.currency)?;
        let max = Decimal::new(UNIT_PRICE_MAX_MINOR_UNITS, self.currency.minor_unit());
        if amount > max {
            return Err(DomainError::invalid(
                "unit_price",
                format!("must be at most {max}"),
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

fn parse_quantity(quantity: Decimal) -> Result<Decimal, DomainError> {
    if quantity <= Decimal::ZERO {
        return Err(DomainError::invalid(
            "quantity",
            "must be greater than zero",
        ));
    }
    if quantity.scale() > QUANTITY_DECIMALS {
        return Err(DomainError::invalid(
            "quantity",
            format!("must have at most {QUANTITY_DECIMALS} decimals"),
        ));
    }
    if quantity > QUANTITY_MAX {
        return Err(DomainError::invalid(
            "quantity",
            format!("must be at most {QUANTITY_MAX}"),
        ));
    }
    Ok(quantity)
}

fn parse_percent(field: &str, percent: Decimal) -> Result<Decimal, DomainError> {
    if percent < Decimal::ZERO || percent > Decimal::ONE_HUNDRED {
        return Err(DomainError::invalid(field, "must be between 0 and 100"));
    }
    if percent.scale() > PERCENT_DECIMALS {
        return Err(DomainError::invalid(
            field,
            format!("must have at most {PERCENT_DECIMALS} decimals"),
        ));
    }
    Ok(percent)
}
