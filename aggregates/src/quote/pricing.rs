//! Quote pricing, pure and exact.
//!
//! Per line: gross = quantity × unit price, less the tier's volume discount for that quantity.
//! The quote subtotal is the gross sum of the lines (DOMAIN.md); the line discounts come off it,
//! and the quote-level discount comes off what is left. Everything is computed in exact decimals and rounded half-even to the currency's minor
//! unit once, at the end, so the order of lines and intermediate rounding cannot move a cent.
//!
//! Exactness needs the inputs inside the bounds the aggregate enforces (quantity ≤ 10⁶ with at
//! most 3 decimals, unit price ≤ 10⁹ minor units, at most 200 lines, percentages with at most 2
//! decimals): then every intermediate value fits `Decimal`'s 96-bit mantissa without rescaling.
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::{CurrencyCode, Money};

const HUNDRED: Decimal = Decimal::ONE_HUNDRED;

/// What pricing needs to know about one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinePrice {
    pub quantity: Decimal,
    pub unit_price: Decimal,
    pub volume_discount_percent: Decimal,
}

impl LinePrice {
    /// Quantity × unit price, before any discount.
    pub fn gross(&self) -> Decimal {
        self.quantity * self.unit_price
    }

    /// The line after its volume discount, exact (not rounded).
    pub fn net(&self) -> Decimal {
        let gross = self.gross();
        gross - percent_of(gross, self.volume_discount_percent)
    }
}

/// A quote's figures, each rounded to the currency's minor unit. The discounts are the
/// differences between rounded figures, so the document adds up to the cent:
/// `subtotal - line_discounts - quote_discount == total`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuoteTotals {
    /// Gross sum of quantity × unit price over the lines, before any discount.
    pub subtotal: Money,
    /// What the volume discounts took off the lines.
    pub line_discounts: Money,
    /// What the quote-level discount took off the subtotal less the line discounts.
    pub quote_discount: Money,
    pub total: Money,
}

/// Prices `lines` with the quote-level `discount_percent`. Inputs are validated by the
/// aggregate (quantity > 0, unit price >= 0); percentages are clamped to 0..=100 because the
/// volume-discount table is tenant configuration, and a bad table must not make a total
/// negative or larger than the lines.
pub fn quote_totals(
    lines: impl IntoIterator<Item = LinePrice>,
    discount_percent: Decimal,
    currency: &CurrencyCode,
) -> QuoteTotals {
    let (gross, net) = lines
        .into_iter()
        .fold((Decimal::ZERO, Decimal::ZERO), |(gross, net), line| {
            (gross + line.gross(), net + line.net())
        });
    let total = net - percent_of(net, discount_percent);
    let subtotal = rounded(gross, currency);
    let net = rounded(net, currency);
    let total = rounded(total, currency);
    QuoteTotals {
        line_discounts: Money::new(subtotal.amount - net.amount, currency.clone()),
        quote_discount: Money::new(net.amount - total.amount, currency.clone()),
        subtotal,
        total,
    }
}

/// `percent` % of `amount`, exact; the percentage is clamped to 0..=100.
fn percent_of(amount: Decimal, percent: Decimal) -> Decimal {
    amount * percent.clamp(Decimal::ZERO, HUNDRED) / HUNDRED
}

/// Rounded half-even and written with exactly the currency's decimals (`"12.50"`, not
/// `"12.5"`), so stored events read like the document.
fn rounded(amount: Decimal, currency: &CurrencyCode) -> Money {
    let mut money = Money::new(amount, currency.clone()).rounded();
    money.amount.rescale(currency.minor_unit());
    money
}
