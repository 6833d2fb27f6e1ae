//! Money: an exact decimal amount in one currency. Never a float.
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

use crate::{CurrencyCode, DomainError};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Money {
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
    pub currency: CurrencyCode,
}

impl Money {
    pub fn new(amount: Decimal, currency: CurrencyCode) -> Self {
        Self { amount, currency }
    }

    pub fn zero(currency: CurrencyCode) -> Self {
        Self::new(Decimal::ZERO, currency)
    }

    /// Rounded half-even to the currency's minor unit: done once, at the end of a calculation.
    pub fn rounded(&self) -> Self {
        let scale = self.currency.minor_unit();
        let amount = self
            .amount
            .round_dp_with_strategy(scale, RoundingStrategy::MidpointNearestEven);
        Self::new(amount, self.currency.clone())
    }

    /// An amount a client sent: not negative, no more decimals than the currency has.
    pub fn parse_amount(
        field: &str,
        amount: Decimal,
        currency: &CurrencyCode,
    ) -> Result<Self, DomainError> {
        if amount < Decimal::ZERO {
            return Err(DomainError::invalid(field, "must not be negative"));
        }
        if amount.scale() > currency.minor_unit() {
            return Err(DomainError::invalid(
                field,
                format!("has more decimals than {} allows", currency.as_str()),
            ));
        }
        Ok(Self::new(amount, currency.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eur(amount: &str) -> Money {
        Money::new(
            amount.parse().unwrap(),
            CurrencyCode::parse("c", "EUR").unwrap(),
        )
    }

    #[test]
    fn rounding_is_half_even_to_the_minor_unit() {
        assert_eq!(eur("0.125").rounded(), eur("0.12"));
        assert_eq!(eur("0.135").rounded(), eur("0.14"));
        assert_eq!(eur("2.5").rounded(), eur("2.50"));
        let yen = Money::new(
            "2.5".parse().unwrap(),
            CurrencyCode::parse("c", "JPY").unwrap(),
        );
        assert_eq!(yen.rounded().amount, Decimal::from(2));
    }

    #[test]
    fn client_amounts_are_checked() {
        let eur_code = CurrencyCode::parse("c", "EUR").unwrap();
        assert!(Money::parse_amount("a", "-1".parse().unwrap(), &eur_code).is_err());
        assert!(Money::parse_amount("a", "1.001".parse().unwrap(), &eur_code).is_err());
        assert!(Money::parse_amount("a", "1.00".parse().unwrap(), &eur_code).is_ok());
    }
}
