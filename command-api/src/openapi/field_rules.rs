//! What the aggregates enforce on string fields, stated in the schemas by field name, and the
//! wire form of decimals.
use aggregates::limits::{EMAIL_FIELDS, EMAIL_MAX, TEXT_FIELDS};
use serde_json::{json, Value};

/// Text the aggregates accept: a non-blank character, no control character inside (whitespace
/// around it is trimmed). Lengths come from `aggregates::limits`.
/// Whitespace as Rust trims it (Unicode White_Space), spelled out: regex dialects disagree on
/// what `\s` holds (Python counts U+001C to U+001F, which are control characters to us).
const TEXT_PATTERN: &str = concat!(
    r"^[\t-\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*",
    r"[^\u0000-\u001F\u007F-\u009F]*",
    r"[^\t-\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000\u0000-\u001F\u007F-\u009F]",
    r"[^\u0000-\u001F\u007F-\u009F]*",
    r"[\t-\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*$"
);
/// An address `Email::parse` accepts: one `@`, something before it, a domain with a dot that
/// neither starts nor ends it, no whitespace or control character inside.
const EMAIL_PATTERN: &str = concat!(
    r"^[\t-\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*",
    r"[^@\s\u0000-\u001F\u007F-\u009F\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]+@",
    r"[^@.\s\u0000-\u001F\u007F-\u009F\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]",
    r"[^@\s\u0000-\u001F\u007F-\u009F\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*\.",
    r"[^@\s\u0000-\u001F\u007F-\u009F\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*",
    r"[^@.\s\u0000-\u001F\u007F-\u009F\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]",
    r"[\t-\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*$"
);
const COUNTRY_PATTERN: &str = concat!(
    r"^[\t-\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*",
    r"[A-Za-z]{2}",
    r"[\t-\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*$"
);
const CURRENCY_PATTERN: &str = concat!(
    r"^[\t-\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*",
    r"[A-Za-z]{3}",
    r"[\t-\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*$"
);

/// The wire form of every decimal (`"1250.00"`). The command types mark such fields with the
/// registry format `decimal`; the pattern is added here so it is written once.
const DECIMAL_PATTERN: &str = r"^-?[0-9]+(\.[0-9]+)?$";

/// States on each string field what the aggregates enforce on it, by the field's name, so a
/// client built from this document sends what is accepted.
pub(super) fn state_text_rules(schema: &mut Value) {
    let Some(properties) = schema["properties"].as_object_mut() else {
        return;
    };
    for (name, field) in properties.iter_mut() {
        let rules = match name.as_str() {
            "country" => json!({ "pattern": COUNTRY_PATTERN }),
            "currency" => json!({ "pattern": CURRENCY_PATTERN }),
            "roles" => json!({ "minItems": 1 }),
            email if EMAIL_FIELDS.contains(&email) => {
                json!({ "pattern": EMAIL_PATTERN, "maxLength": EMAIL_MAX })
            }
            text => match TEXT_FIELDS.iter().find(|(field, _)| *field == text) {
                Some((_, max)) => json!({ "pattern": TEXT_PATTERN, "maxLength": max }),
                None => continue,
            },
        };
        if let (Some(field), Some(rules)) = (field.as_object_mut(), rules.as_object()) {
            field.extend(rules.clone());
        }
    }
}

/// Adds the decimal pattern to every field of the registry format `decimal`.
pub(super) fn add_decimal_patterns(value: &mut Value) {
    match value {
        Value::Object(object) => {
            if object.get("format") == Some(&json!("decimal")) {
                object.insert("pattern".into(), json!(DECIMAL_PATTERN));
            }
            object.values_mut().for_each(add_decimal_patterns);
        }
        Value::Array(items) => items.iter_mut().for_each(add_decimal_patterns),
        _ => {}
    }
}
