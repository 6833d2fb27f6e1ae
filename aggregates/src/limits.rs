//! How long the text of a command may be, counted in characters as sent (before trimming), and
//! the bounds of its numbers. The aggregates enforce these; the command API's document states
//! them (`TEXT_FIELDS`, `DECIMAL_FIELDS`), so a client built from it sends what is accepted.
use crate::decimal::DecimalBounds;

/// Names of companies and people.
pub const NAME_MAX: usize = 200;
pub const TITLE_MAX: usize = 200;
pub const SKU_MAX: usize = 64;
pub const DESCRIPTION_MAX: usize = 1000;
/// Reasons and comments.
pub const REASON_MAX: usize = 1000;
pub const TERMS_MAX: usize = 100_000;
/// An e-mail address (RFC 5321's limit).
pub const EMAIL_MAX: usize = 254;

/// Every free-text field of the commands clients send, by its wire name, with its limit.
pub const TEXT_FIELDS: &[(&str, usize)] = &[
    ("name", NAME_MAX),
    ("legal_name", NAME_MAX),
    ("display_name", NAME_MAX),
    ("signatory_name", NAME_MAX),
    ("title", TITLE_MAX),
    ("sku", SKU_MAX),
    ("description", DESCRIPTION_MAX),
    ("reason", REASON_MAX),
    ("comment", REASON_MAX),
    ("terms", TERMS_MAX),
];

/// Every e-mail field of the commands clients send.
pub const EMAIL_FIELDS: &[&str] = &["email", "billing_email", "signatory_email"];

/// The most a Partner account's API quota allows per minute (`SetApiQuota`; at least 1).
pub const QUOTA_MAX: u32 = 1_000_000;

/// Money a client sends, in any currency: up to 10^18 (far above real amounts; a quote's total
/// of 200 lines at the largest quantity and price stays below it) with at most as many decimals
/// as any currency has. The currency's own minor unit is a business rule (`too_many_decimals`).
pub const MONEY: DecimalBounds = DecimalBounds {
    positive: false,
    max_power: 18,
    max_scale: MONEY_MAX_SCALE,
};
/// The most decimals of a currency `CurrencyCode::parse` accepts (a test keeps it true).
pub const MONEY_MAX_SCALE: u32 = 3;
/// A line's unit price: at most 10^9 minor units of the quote's currency (the highest, 10^9,
/// in a currency without decimals); above its currency's cap is `unit_price_too_high`.
pub const UNIT_PRICE: DecimalBounds = DecimalBounds {
    max_power: 9,
    ..MONEY
};
/// A line's quantity: above zero, up to a million, in thousandths at most.
pub const QUANTITY: DecimalBounds = DecimalBounds {
    positive: true,
    max_power: 6,
    max_scale: 3,
};
/// A discount in percent.
pub const PERCENT: DecimalBounds = DecimalBounds {
    positive: false,
    max_power: 2,
    max_scale: 2,
};

/// Every decimal field of the commands clients send, by its wire name, with its bounds.
pub const DECIMAL_FIELDS: &[(&str, DecimalBounds)] = &[
    ("amount", MONEY),
    ("value", MONEY),
    ("new_value", MONEY),
    ("unit_price", UNIT_PRICE),
    ("quantity", QUANTITY),
    ("percent", PERCENT),
];
