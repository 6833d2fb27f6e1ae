//! Pricing examples, and property tests against an independent fixed-point calculation.
use proptest::prelude::*;

use super::*;
use crate::quote::pricing::LinePrice;

fn code(c: &str) -> CurrencyCode {
    CurrencyCode::parse("c", c).unwrap()
}

fn price(quantity: &str, unit_price: &str, percent: &str) -> LinePrice {
    LinePrice {
        quantity: dec(quantity),
        unit_price: dec(unit_price),
        volume_discount_percent: dec(percent),
    }
}

fn total(lines: &[LinePrice], discount: &str, currency: &str) -> Decimal {
    quote_totals(lines.iter().copied(), dec(discount), &code(currency))
        .total
        .amount
}

#[test]
fn rounding_happens_once_at_the_end_half_even() {
    // Each line is exactly 0.005; rounded per line they would vanish, summed they are 0.015.
    let half_cents = vec![price("1", "0.01", "50"); 3];
    assert_eq!(total(&half_cents, "0", "EUR"), dec("0.02"));
    assert_eq!(total(&[price("1", "0.25", "50")], "0", "EUR"), dec("0.12"));
    assert_eq!(total(&[price("1", "0.35", "50")], "0", "EUR"), dec("0.18"));
    assert_eq!(total(&[price("1", "5", "50")], "0", "JPY"), dec("2"));
    assert_eq!(
        total(&[price("1", "1.001", "50")], "0", "KWD"),
        dec("0.500")
    );
}

#[test]
fn figures_are_written_with_the_currencys_decimals() {
    let totals = quote_totals([price("2", "5", "0")], Decimal::ZERO, &eur());
    assert_eq!(totals.total.amount.to_string(), "10.00");
    assert_eq!(totals.quote_discount.amount.to_string(), "0.00");
}

#[test]
fn an_empty_quote_costs_nothing() {
    let totals = quote_totals([], dec("50"), &eur());
    assert!(totals.total.amount.is_zero() && totals.subtotal.amount.is_zero());
}

#[test]
fn a_misconfigured_volume_discount_never_makes_a_line_negative_or_dearer() {
    assert_eq!(total(&[price("2", "10", "150")], "0", "EUR"), dec("0.00"));
    assert_eq!(total(&[price("2", "10", "-10")], "0", "EUR"), dec("20.00"));
    assert_eq!(total(&[price("2", "10", "0")], "150", "EUR"), dec("0.00"));
}

#[test]
fn pricing_stays_exact_at_the_validation_bounds() {
    for (currency, unit_price) in [
        ("EUR", "9999999.99"),
        ("JPY", "999999999"),
        ("KWD", "999999.999"),
    ] {
        let lines = vec![price("999999.999", unit_price, "33.33"); 200];
        let currency = code(currency);
        let expected = Oracle::price(&lines, dec("66.67"), currency.minor_unit());
        let actual = quote_totals(lines.iter().copied(), dec("66.67"), &currency);
        expected.assert_matches(&actual);
    }
}

/// The same arithmetic in plain integers at a fixed scale: quantities and prices × 10³,
/// percentages × 10², which is exact for every input the aggregate accepts.
struct Oracle {
    minor_unit: u32,
    gross: i128,
    net: i128,
    total: i128,
}

impl Oracle {
    fn price(lines: &[LinePrice], discount: Decimal, minor_unit: u32) -> Self {
        let (mut gross_e6, mut net_e10) = (0_i128, 0_i128);
        for line in lines {
            let qp = fixed(line.quantity, 3) * fixed(line.unit_price, 3);
            gross_e6 += qp;
            net_e10 += qp * (10_000 - fixed(line.volume_discount_percent, 2));
        }
        let total_e14 = net_e10 * (10_000 - fixed(discount, 2));
        Self {
            minor_unit,
            gross: round_half_even(gross_e6, 6 - minor_unit),
            net: round_half_even(net_e10, 10 - minor_unit),
            total: round_half_even(total_e14, 14 - minor_unit),
        }
    }

    fn assert_matches(&self, totals: &QuoteTotals) {
        let minor = |v: i128| Decimal::from_i128_with_scale(v, self.minor_unit);
        assert_eq!(
            totals.subtotal.amount,
            minor(self.gross),
            "subtotal is the gross"
        );
        assert_eq!(totals.total.amount, minor(self.total), "total");
        assert_eq!(
            totals.line_discounts.amount,
            minor(self.gross - self.net),
            "line discounts"
        );
        assert_eq!(
            totals.quote_discount.amount,
            minor(self.net - self.total),
            "quote discount"
        );
    }
}

fn fixed(value: Decimal, scale: u32) -> i128 {
    let mut value = value;
    value.rescale(scale);
    assert_eq!(value.scale(), scale, "{value} does not fit scale {scale}");
    value.mantissa()
}

fn round_half_even(value: i128, drop_digits: u32) -> i128 {
    let unit = 10_i128.pow(drop_digits);
    let (quotient, remainder) = (value / unit, value % unit);
    match (remainder * 2).cmp(&unit) {
        std::cmp::Ordering::Less => quotient,
        std::cmp::Ordering::Greater => quotient + 1,
        std::cmp::Ordering::Equal => quotient + quotient % 2,
    }
}

/// A decimal in 0..=max with at most `max_scale` decimals; small values more often, where
/// rounding ties are likely.
fn decimal(max: i64, max_scale: u32) -> impl Strategy<Value = Decimal> {
    (0..=max_scale, prop::bool::weighted(0.7)).prop_flat_map(move |(scale, small)| {
        let top = if small { max.min(20) } else { max };
        (0..=top * 10_i64.pow(scale)).prop_map(move |m| Decimal::new(m, scale))
    })
}

fn currency() -> impl Strategy<Value = CurrencyCode> {
    prop_oneof![Just("EUR"), Just("JPY"), Just("KWD")].prop_map(code)
}

fn percent() -> impl Strategy<Value = Decimal> {
    prop_oneof![Just(Decimal::ZERO), decimal(100, 2)]
}

/// Lines inside the aggregate's bounds: quantity 0 < q ≤ 10⁶ with ≤ 3 decimals, unit price up
/// to 10⁹ minor units with no more decimals than the currency.
fn lines(minor_unit: u32, max: usize) -> impl Strategy<Value = Vec<LinePrice>> {
    let unit_price_max = 1_000_000_000 / 10_i64.pow(minor_unit);
    let line = (
        decimal(1_000_000, 3).prop_filter("quantity > 0", |q| !q.is_zero()),
        decimal(unit_price_max, minor_unit),
        percent(),
    )
        .prop_map(
            |(quantity, unit_price, volume_discount_percent)| LinePrice {
                quantity,
                unit_price,
                volume_discount_percent,
            },
        );
    prop::collection::vec(line, 0..max)
}

fn quote() -> impl Strategy<Value = (CurrencyCode, Vec<LinePrice>, Decimal)> {
    currency().prop_flat_map(|c| {
        let minor = c.minor_unit();
        (Just(c), lines(minor, 30), percent())
    })
}

proptest! {
    #[test]
    fn totals_match_an_independent_fixed_point_calculation((currency, lines, discount) in quote()) {
        let totals = quote_totals(lines.iter().copied(), discount, &currency);
        Oracle::price(&lines, discount, currency.minor_unit()).assert_matches(&totals);
    }

    #[test]
    fn the_document_adds_up_and_nothing_is_negative((currency, lines, discount) in quote()) {
        let totals = quote_totals(lines.iter().copied(), discount, &currency);
        let figures = [&totals.subtotal, &totals.line_discounts, &totals.quote_discount, &totals.total];
        for money in figures {
            prop_assert!(money.amount >= Decimal::ZERO);
            prop_assert_eq!(money.amount.scale(), currency.minor_unit());
            prop_assert_eq!(&money.currency, &currency);
        }
        // Whoever recomputes the total from the document's figures gets the total.
        prop_assert_eq!(
            totals.subtotal.amount - totals.line_discounts.amount - totals.quote_discount.amount,
            totals.total.amount
        );
        prop_assert!(totals.total.amount <= totals.subtotal.amount);
        // The total is the exact sum of discounted lines less the quote discount, rounded once.
        let exact: Decimal = lines.iter().map(LinePrice::net).sum();
        let exact = exact - exact * discount / Decimal::ONE_HUNDRED;
        let rounded = crate::Money::new(exact, currency.clone()).rounded();
        prop_assert_eq!(totals.total.amount, rounded.amount);
    }

    #[test]
    fn line_order_does_not_change_totals(
        (currency, lines, discount, shuffled) in quote().prop_flat_map(|(c, l, d)| {
            let shuffled = Just(l.clone()).prop_shuffle();
            (Just(c), Just(l), Just(d), shuffled)
        })
    ) {
        prop_assert_eq!(
            quote_totals(lines, discount, &currency),
            quote_totals(shuffled, discount, &currency)
        );
    }
}
