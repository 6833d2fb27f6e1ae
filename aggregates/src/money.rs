//! Money: an exact decimal amount in one currency. Never a float.
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

use crate::decimal::DecimalBounds;
use crate::{CurrencyCode, DomainError, RuleCode};

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

    /// An amount a client sent: within `bounds` (the form the API document states), and with
    /// no more decimals than the currency has, a rule between two fields (or the amount and the
    /// aggregate's currency) that a schema cannot state.
    pub fn parse_amount(
        field: &str,
        amount: Decimal,
        bounds: &DecimalBounds,
        currency: &CurrencyCode,
    ) -> Result<Self, DomainError> {
        let amount = bounds.check(field, amount)?;
        if amount.scale() > currency.minor_unit() {
            return Err(DomainError::rule(
                RuleCode::TooManyDecimals,
                format!(
                    "{field} has more decimals than {} allows ({})",
                    currency.as_str(),
                    currency.minor_unit()
                ),
            ));
        }
        Ok(Self::new(amount, currency.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::MONEY;

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
        let parse =
            |amount: &str| Money::parse_amount("a", amount.parse().unwrap(), &MONEY, &eur_code);
        assert!(matches!(parse("-1"), Err(DomainError::InvalidField { .. })));
        assert!(matches!(
            parse("1.001"),
            Err(DomainError::RuleViolated {
                code: RuleCode::TooManyDecimals,
                ..
            })
        ));
        assert!(matches!(
            parse("1.00001"),
            Err(DomainError::InvalidField { .. })
        ));
        assert!(parse("1.00").is_ok());
    }
}
