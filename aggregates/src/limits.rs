//! How long the text of a command may be, counted in characters as sent (before trimming).
//! The aggregates enforce these; the command API's document states them (`TEXT_FIELDS`), so a
//! client built from it sends what is accepted.

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
