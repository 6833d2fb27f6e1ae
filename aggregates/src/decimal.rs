//! Numbers as clients send them: decimals, with the bounds of each decimal field, and counts.
//!
//! On the wire a decimal is a string of digits with an optional fraction (`"1250.00"`): no sign,
//! exponent, separator or leading zero, so its digits as sent are its value and its scale. Each
//! field's [`DecimalBounds`] are checked by the aggregate that takes it and stated by the API
//! document as a pattern; what the document calls valid is accepted.
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer};

use crate::DomainError;

/// The range and precision of one decimal field: `0 <= value <= 10^max_power` (above zero when
/// `positive`), with at most `max_scale` digits after the point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecimalBounds {
    pub positive: bool,
    pub max_power: u32,
    pub max_scale: u32,
}

impl DecimalBounds {
    /// The largest value, `10^max_power`.
    pub fn max(&self) -> Decimal {
        Decimal::from(10_i64.pow(self.max_power))
    }

    /// `value` if it lies within the bounds.
    pub fn check(&self, field: &str, value: Decimal) -> Result<Decimal, DomainError> {
        if self.positive && value <= Decimal::ZERO {
            return Err(DomainError::invalid(field, "must be greater than zero"));
        }
        if value < Decimal::ZERO {
            return Err(DomainError::invalid(field, "must not be negative"));
        }
        if value > self.max() {
            return Err(DomainError::invalid(
                field,
                format!("must be at most {}", self.max()),
            ));
        }
        if value.scale() > self.max_scale {
            return Err(DomainError::invalid(
                field,
                format!("must have at most {} decimals", self.max_scale),
            ));
        }
        Ok(value)
    }
}

/// Whether `raw` has the wire form: `0` or digits not starting with `0`, then optionally `.` and
/// at least one digit.
fn is_wire_form(raw: &str) -> bool {
    let (integer, fraction) = match raw.split_once('.') {
        Some((integer, fraction)) => (integer, Some(fraction)),
        None => (raw, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits(integer) && (integer == "0" || !integer.starts_with('0')) && fraction.is_none_or(digits)
}

/// Parses the wire form; anything else, or more digits than a decimal holds, is an error.
pub fn parse_wire(raw: &str) -> Result<Decimal, String> {
    if !is_wire_form(raw) {
        return Err(format!(
            "`{raw}` is not a decimal string like \"1250.00\" (digits, an optional fraction, \
             no sign or leading zero)"
        ));
    }
    Decimal::from_str_exact(raw).map_err(|_| format!("`{raw}` has too many digits"))
}

/// `#[serde(deserialize_with = "crate::decimal::wire::deserialize")]` for a decimal field.
pub mod wire {
    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Decimal, D::Error> {
        let raw = String::deserialize(deserializer)?;
        parse_wire(&raw).map_err(serde::de::Error::custom)
    }
}

/// `#[serde(default, deserialize_with = "crate::decimal::wire_option::deserialize")]` for an
/// optional decimal field.
pub mod wire_option {
    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Decimal>, D::Error> {
        Option::<String>::deserialize(deserializer)?
            .map(|raw| parse_wire(&raw).map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// `#[serde(deserialize_with = "crate::decimal::whole_u32")]` for a count: any JSON number
/// that is a whole number in range, `120` or `120.0` alike (JSON, and JSON Schema's `integer`,
/// do not tell them apart).
pub fn whole_u32<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    struct Whole;
    impl serde::de::Visitor<'_> for Whole {
        type Value = u32;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            write!(f, "a whole number from 0 to {}", u32::MAX)
        }

        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<u32, E> {
            u32::try_from(v).map_err(|_| E::custom(format!("{v} is above {}", u32::MAX)))
        }

        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<u32, E> {
            u32::try_from(v).map_err(|_| E::custom(format!("{v} is not from 0 to {}", u32::MAX)))
        }

        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<u32, E> {
            if v.fract() != 0.0 || !(0.0..=f64::from(u32::MAX)).contains(&v) {
                return Err(E::custom(format!(
                    "{v} is not a whole number from 0 to {}",
                    u32::MAX
                )));
            }
            // Whole and in range: the cast is exact.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            Ok(v as u32)
        }
    }
    deserializer.deserialize_any(Whole)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wire_form_is_plain_digits() {
        for good in ["0", "0.5", "10", "1250.00", "0.000"] {
            assert!(parse_wire(good).is_ok(), "{good}");
        }
        for bad in [
            "", "-1", "+1", "01", "00.5", ".5", "5.", "1e3", "1_000", " 1", "1,5", "٣",
        ] {
            assert!(parse_wire(bad).is_err(), "{bad}");
        }
        assert!(parse_wire(&"9".repeat(40)).is_err());
        assert_eq!(parse_wire("1.230").unwrap().scale(), 3);
    }

    #[test]
    fn a_count_is_any_whole_json_number() {
        let parse = |json: &str| whole_u32(&mut serde_json::Deserializer::from_str(json));
        for (json, count) in [("120", 120), ("120.0", 120), ("1.2e2", 120), ("0", 0)] {
            assert_eq!(parse(json).unwrap(), count, "{json}");
        }
        for json in ["-1", "1.5", "4294967296", "1e10", "\"5\"", "null"] {
            assert!(parse(json).is_err(), "{json}");
        }
    }

    #[test]
    fn bounds_are_inclusive_at_the_top_and_count_decimals_as_sent() {
        let bounds = DecimalBounds {
            positive: true,
            max_power: 2,
            max_scale: 2,
        };
        let check = |raw: &str| bounds.check("f", parse_wire(raw).unwrap());
        assert!(check("100").is_ok());
        assert!(check("100.00").is_ok());
        assert!(check("0.01").is_ok());
        assert!(check("100.01").is_err());
        assert!(check("0").is_err());
        assert!(check("0.00").is_err());
        assert!(check("1.001").is_err());
        assert!(check("1.000").is_err());
    }
}
