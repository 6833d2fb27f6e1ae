//! Validated value types: parsing is the only way in, so a value that exists is valid.
use iso_currency::Currency;
use serde::{Deserialize, Serialize};

use crate::DomainError;

/// Trimmed, non-empty text of bounded length.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Text(String);

impl Text {
    /// At most `max_chars` characters as sent (the limit the API document states), not blank,
    /// no control characters inside; stored trimmed.
    pub fn parse(field: &str, raw: &str, max_chars: usize) -> Result<Self, DomainError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(DomainError::invalid(field, "must not be empty"));
        }
        if raw.chars().count() > max_chars {
            return Err(DomainError::invalid(
                field,
                format!("must be at most {max_chars} characters"),
            ));
        }
        if trimmed.chars().any(char::is_control) {
            return Err(DomainError::invalid(
                field,
                "must not contain control characters",
            ));
        }
        Ok(Self(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An e-mail address, stored lower-case: addresses are compared case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    pub fn parse(field: &str, raw: &str) -> Result<Self, DomainError> {
        let candidate = raw.trim().to_lowercase();
        let bad = || DomainError::invalid(field, "must be an e-mail address like name@example.com");
        if raw.chars().count() > crate::limits::EMAIL_MAX
            || candidate
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(bad());
        }
        let (local, domain) = candidate.split_once('@').ok_or_else(bad)?;
        let domain_ok = domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains('@');
        if local.is_empty() || !domain_ok {
            return Err(bad());
        }
        Ok(Self(candidate))
    }

    /// What a forgotten person's address reads as. Not an address, so it never equals one a
    /// command gives.
    pub fn erased() -> Self {
        Self(crate::ERASED.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// ISO 3166-1 alpha-2 country code, upper-case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CountryCode(String);

impl CountryCode {
    pub fn parse(field: &str, raw: &str) -> Result<Self, DomainError> {
        let code = raw.trim();
        if code.len() == 2 && code.chars().all(|c| c.is_ascii_alphabetic()) {
            Ok(Self(code.to_ascii_uppercase()))
        } else {
            Err(DomainError::invalid(
                field,
                "must be an ISO 3166-1 alpha-2 code like DE",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// ISO 4217 currency code, upper-case. The minor unit is needed to round money at the end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CurrencyCode(String);

impl CurrencyCode {
    /// An ISO 4217 code of a currency in use with a minor unit: funds, precious metals,
    /// testing codes and superseded currencies are not money a quote is written in.
    pub fn parse(field: &str, raw: &str) -> Result<Self, DomainError> {
        // ASCII letters first: `to_uppercase` would turn "ß" into "SS".
        let code = raw.trim();
        if !(code.len() == 3 && code.chars().all(|c| c.is_ascii_alphabetic())) {
            return Err(DomainError::invalid(
                field,
                "must be the ISO 4217 code of a currency in use, like EUR",
            ));
        }
        let code = code.to_ascii_uppercase();
        match Currency::from_code(&code) {
            Some(currency)
                if currency.exponent().is_some()
                    && !currency.is_fund()
                    && !currency.is_special()
                    && currency.is_superseded().is_none() =>
            {
                Ok(Self(code))
            }
            _ => Err(DomainError::invalid(
                field,
                "must be the ISO 4217 code of a currency in use, like EUR",
            )),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Every code `parse` accepts, upper-case and in alphabetical order (the API document
    /// lists them).
    pub fn accepted_codes() -> Vec<Self> {
        let letters = || (b'A'..=b'Z').map(char::from);
        letters()
            .flat_map(|a| letters().flat_map(move |b| letters().map(move |c| [a, b, c])))
            .filter_map(|code| Self::parse("currency", &String::from_iter(code)).ok())
            .collect()
    }

    /// Digits after the decimal point for amounts in this currency (ISO 4217's exponent).
    pub fn minor_unit(&self) -> u32 {
        Currency::from_code(&self.0)
            .and_then(Currency::exponent)
            .map_or(2, u32::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_is_lower_cased_and_checked() {
        assert_eq!(
            Email::parse("e", " Ann@Acme.Test ").unwrap().as_str(),
            "ann@acme.test"
        );
        for bad in [
            "",
            "ann",
            "ann@",
            "@acme.test",
            "ann@acme",
            "a b@acme.test",
            "ann@.test",
        ] {
            assert!(Email::parse("e", bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn text_is_trimmed_bounded_and_non_empty() {
        assert_eq!(Text::parse("t", "  Acme ", 10).unwrap().as_str(), "Acme");
        assert!(Text::parse("t", "   ", 10).is_err());
        assert!(Text::parse("t", "abcdefghijk", 10).is_err());
        assert!(Text::parse("t", "a\u{0}b", 10).is_err());
    }

    #[test]
    fn an_erased_address_reads_as_erased_and_is_no_valid_address() {
        assert_eq!(Email::erased().as_str(), crate::ERASED);
        assert!(Email::parse("e", crate::ERASED).is_err());
    }

    #[test]
    fn codes_are_upper_cased_and_shaped() {
        assert_eq!(CountryCode::parse("c", "de").unwrap().as_str(), "DE");
        assert!(CountryCode::parse("c", "DEU").is_err());
        assert_eq!(CurrencyCode::parse("c", "eur").unwrap().as_str(), "EUR");
        assert!(CurrencyCode::parse("c", "E1R").is_err());
        assert_eq!(CurrencyCode::parse("c", "JPY").unwrap().minor_unit(), 0);
    }

    #[test]
    fn accepted_currencies_are_listed_and_bound_the_decimals_of_money() {
        let codes = CurrencyCode::accepted_codes();
        let listed = |code: &str| codes.iter().any(|c| c.as_str() == code);
        assert!(listed("EUR") && listed("JPY") && listed("BHD"));
        assert!(!listed("XAU") && !listed("XTS") && !listed("ZZZ"));
        let most_decimals = codes.iter().map(CurrencyCode::minor_unit).max();
        assert_eq!(most_decimals, Some(crate::limits::MONEY_MAX_SCALE));
    }
}
