//! What the aggregates enforce on a field by itself, stated in the schemas by the field's name:
//! text, e-mail, country and currency patterns, decimal bounds, roles and quotas. Rules between
//! fields or against an aggregate's state are business rules (422), which the document lists
//! as responses, not as schemas.
use aggregates::decimal::DecimalBounds;
use aggregates::limits::{DECIMAL_FIELDS, EMAIL_FIELDS, EMAIL_MAX, QUOTA_MAX, TEXT_FIELDS};
use aggregates::CurrencyCode;
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
/// Whitespace as Rust trims it, which codes may have around them.
const SPACE: &str = r"[\t-\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*";

/// A code `CurrencyCode::parse` accepts: one of the listed ISO 4217 codes, in either case, with
/// whitespace around it.
fn currency_pattern() -> String {
    let codes: Vec<String> = CurrencyCode::accepted_codes()
        .iter()
        .map(|code| {
            code.as_str()
                .chars()
                .map(|c| format!("[{c}{}]", c.to_ascii_lowercase()))
                .collect()
        })
        .collect();
    format!("^{SPACE}(?:{}){SPACE}$", codes.join("|"))
}

/// A decimal in the wire form (`aggregates::decimal`) within `bounds`, as a pattern: digits
/// without a leading zero up to `10^max_power`, at most `max_scale` of them after the point,
/// and not zero when the bounds are `positive`.
fn decimal_pattern(bounds: &DecimalBounds) -> String {
    let DecimalBounds {
        positive,
        max_power,
        max_scale,
    } = *bounds;
    assert!(max_power >= 1, "a decimal field allows at least 10");
    let fraction = |digits: &str| match max_scale {
        0 => String::new(),
        s => format!(r"(?:\.{digits}{{1,{s}}})?"),
    };
    let below_top_integers = format!("[1-9][0-9]{{0,{}}}", max_power - 1);
    let top = format!("1{}{}", "0".repeat(max_power as usize), fraction("0"));
    let mut alternatives = vec![format!("{below_top_integers}{}", fraction("[0-9]")), top];
    if positive {
        // Zero point something that is not all zeros: the first non-zero digit at each place.
        alternatives.extend(
            (0..max_scale)
                .map(|place| format!(r"0\.0{{{place}}}[1-9][0-9]{{0,{}}}", max_scale - 1 - place)),
        );
    } else {
        alternatives.push(format!("0{}", fraction("[0-9]")));
    }
    format!("^(?:{})$", alternatives.join("|"))
}

/// A role list with Partner either alone (repeats collapse) or absent: a Partner acts only for
/// its own account.
fn roles_rules() -> Value {
    json!({
        "minItems": 1,
        "anyOf": [
            { "items": { "const": "Partner" } },
            { "items": { "not": { "const": "Partner" } } },
        ],
    })
}

/// States on each field what the aggregates enforce on it, by the field's name, so a client
/// built from this document sends what is accepted. Every decimal field must have bounds.
pub(super) fn state_field_rules(schema: &mut Value) {
    let Some(properties) = schema["properties"].as_object_mut() else {
        return;
    };
    for (name, field) in properties.iter_mut() {
        let rules = match name.as_str() {
            "country" => json!({ "pattern": COUNTRY_PATTERN }),
            "currency" => json!({ "pattern": currency_pattern() }),
            "roles" => roles_rules(),
            "requests_per_minute" => json!({ "minimum": 1, "maximum": QUOTA_MAX }),
            email if EMAIL_FIELDS.contains(&email) => {
                json!({ "pattern": EMAIL_PATTERN, "maxLength": EMAIL_MAX })
            }
            decimal if field["format"] == "decimal" => {
                let (_, bounds) = DECIMAL_FIELDS
                    .iter()
                    .find(|(field, _)| *field == decimal)
                    .unwrap_or_else(|| panic!("no bounds for the decimal field `{decimal}`"));
                json!({ "pattern": decimal_pattern(bounds) })
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
