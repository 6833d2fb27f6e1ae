//! Tenant configuration the rules read: the currencies the tenant trades in and, per currency,
//! when a quote needs approval and which chain of approver roles an amount needs; the
//! volume-discount breaks of each account tier, and approval SLAs. Stored per tenant;
//! `TenantPolicy::default()` is what a new tenant starts with.
use std::collections::BTreeMap;

use chrono::Duration;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::account::Tier;
use crate::{CurrencyCode, DomainError, Money, Role, RuleCode};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TenantPolicy {
    /// The currencies accounts and contracts may use (ISO 4217 codes), each with its own
    /// approval amounts: amounts are never converted, so 9,999 JPY and 9,999 EUR are judged
    /// by different thresholds.
    pub currencies: BTreeMap<String, CurrencyRules>,
    /// A quote-level discount above this percentage needs approval whatever the total.
    #[serde(with = "rust_decimal::serde::str")]
    pub max_discount_without_approval: Decimal,
    /// Hours each approval level has before it escalates.
    pub level_sla_hours: i64,
    pub volume_discounts: VolumeDiscounts,
    /// Users holding any of these roles must sign in with a second factor (TOTP); a user who
    /// has not enrolled yet enrols as part of their next sign-in (`auth::totp`). Empty by
    /// default; a user may always enable it for themself.
    #[serde(default)]
    pub mfa_required_roles: Vec<Role>,
}

/// When an amount in one currency needs approval, and by whom.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CurrencyRules {
    /// A quote whose total exceeds this needs approval.
    #[serde(with = "rust_decimal::serde::str")]
    pub approval_threshold: Decimal,
    /// Chains by amount: the first band whose `up_to` is at least the amount applies; a band
    /// without `up_to` takes everything above.
    pub approval_bands: Vec<ApprovalBand>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalBand {
    #[serde(with = "rust_decimal::serde::str_option")]
    pub up_to: Option<Decimal>,
    pub levels: Vec<Role>,
}

/// Per tier, the discount percentage from each quantity break upwards (ascending `min_quantity`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VolumeDiscounts {
    pub standard: Vec<QuantityBreak>,
    pub gold: Vec<QuantityBreak>,
    pub enterprise: Vec<QuantityBreak>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuantityBreak {
    #[serde(with = "rust_decimal::serde::str")]
    pub min_quantity: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    pub percent: Decimal,
}

impl TenantPolicy {
    /// The roles that must approve `amount`, one level each, in order; none when the policy
    /// has no chain for it (its currency is not one the tenant trades in).
    pub fn approval_chain(&self, amount: &Money) -> Vec<Role> {
        let Some(rules) = self.rules(&amount.currency) else {
            return vec![];
        };
        rules
            .approval_bands
            .iter()
            .find(|band| band.up_to.is_none_or(|limit| amount.amount <= limit))
            .map(|band| band.levels.clone())
            .unwrap_or_default()
    }

    /// Whether a quote with this total and quote-level discount needs approval. A total in a
    /// currency the policy does not name always does.
    pub fn needs_approval(&self, total: &Money, discount_percent: Decimal) -> bool {
        let above = self
            .rules(&total.currency)
            .is_none_or(|rules| total.amount > rules.approval_threshold);
        above || discount_percent > self.max_discount_without_approval
    }

    /// Refuses a currency the tenant does not trade in (a rule of the tenant, 422).
    pub fn allow(&self, currency: &CurrencyCode) -> Result<(), DomainError> {
        match self.rules(currency) {
            Some(_) => Ok(()),
            None => Err(DomainError::rule(
                RuleCode::CurrencyNotAllowed,
                format!(
                    "the tenant trades in {}, not {}",
                    self.currencies
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", "),
                    currency.as_str()
                ),
            )),
        }
    }

    fn rules(&self, currency: &CurrencyCode) -> Option<&CurrencyRules> {
        self.currencies.get(currency.as_str())
    }

    /// The volume discount (percent) a line of `quantity` gets for an account of `tier`.
    pub fn volume_discount(&self, tier: Tier, quantity: Decimal) -> Decimal {
        let breaks = match tier {
            Tier::Standard => &self.volume_discounts.standard,
            Tier::Gold => &self.volume_discounts.gold,
            Tier::Enterprise => &self.volume_discounts.enterprise,
        };
        breaks
            .iter()
            .rev()
            .find(|b| quantity >= b.min_quantity)
            .map_or(Decimal::ZERO, |b| b.percent)
    }

    pub fn level_sla(&self) -> Duration {
        Duration::hours(self.level_sla_hours)
    }

    /// A policy the rules can always apply: every amount has a chain, percentages are
    /// percentages, and levels get time to act.
    pub fn validate(&self) -> Result<(), DomainError> {
        let percent = |field: &str, value: Decimal| {
            if value < Decimal::ZERO || value > Decimal::ONE_HUNDRED {
                Err(DomainError::invalid(field, "must be between 0 and 100"))
            } else {
                Ok(())
            }
        };
        if self.currencies.is_empty() {
            return Err(DomainError::invalid(
                "currencies",
                "name at least one currency",
            ));
        }
        for (code, rules) in &self.currencies {
            let field = format!("currencies.{code}");
            let parsed = CurrencyCode::parse(&field, code)?;
            if parsed.as_str() != code {
                return Err(DomainError::invalid(&field, "write the code in capitals"));
            }
            rules.validate(&field)?;
        }
        percent(
            "max_discount_without_approval",
            self.max_discount_without_approval,
        )?;
        if self.level_sla_hours <= 0 {
            return Err(DomainError::invalid("level_sla_hours", "must be positive"));
        }
        let tables = &self.volume_discounts;
        for (name, breaks) in [
            ("volume_discounts.standard", &tables.standard),
            ("volume_discounts.gold", &tables.gold),
            ("volume_discounts.enterprise", &tables.enterprise),
        ] {
            breaks.iter().try_for_each(|b| percent(name, b.percent))?;
            if !breaks
                .windows(2)
                .all(|w| w[0].min_quantity < w[1].min_quantity)
            {
                return Err(DomainError::invalid(
                    name,
                    "breaks must ascend by min_quantity",
                ));
            }
        }
        Ok(())
    }
}

impl CurrencyRules {
    /// The default amounts: a threshold of 10,000, one Manager up to 10,000, Manager then
    /// TenantAdmin up to 50,000, and a second TenantAdmin above.
    fn tens_of_thousands(scale: i64) -> Self {
        let amount = |n: i64| Decimal::from(n * scale);
        Self {
            approval_threshold: amount(10_000),
            approval_bands: vec![
                ApprovalBand {
                    up_to: Some(amount(10_000)),
                    levels: vec![Role::Manager],
                },
                ApprovalBand {
                    up_to: Some(amount(50_000)),
                    levels: vec![Role::Manager, Role::TenantAdmin],
                },
                ApprovalBand {
                    up_to: None,
                    levels: vec![Role::Manager, Role::TenantAdmin, Role::TenantAdmin],
                },
            ],
        }
    }

    fn validate(&self, field: &str) -> Result<(), DomainError> {
        if self.approval_threshold < Decimal::ZERO {
            return Err(DomainError::invalid(
                format!("{field}.approval_threshold"),
                "must not be negative",
            ));
        }
        let field = format!("{field}.approval_bands");
        let bands = &self.approval_bands;
        let well_ordered = bands.split_last().is_some_and(|(last, bounded)| {
            last.up_to.is_none()
                && bounded.iter().all(|b| b.up_to.is_some())
                && bounded.windows(2).all(|w| w[0].up_to < w[1].up_to)
        });
        if !well_ordered {
            return Err(DomainError::invalid(
                &field,
                "must ascend by up_to and end with a band without up_to",
            ));
        }
        let allowed = [Role::Operator, Role::Manager, Role::TenantAdmin];
        if bands
            .iter()
            .any(|b| b.levels.is_empty() || b.levels.iter().any(|r| !allowed.contains(r)))
        {
            return Err(DomainError::invalid(
                &field,
                "each band needs levels of Operator, Manager or TenantAdmin",
            ));
        }
        Ok(())
    }
}

fn breaks(pairs: &[(i64, i64)]) -> Vec<QuantityBreak> {
    pairs
        .iter()
        .map(|&(min_quantity, percent)| QuantityBreak {
            min_quantity: Decimal::from(min_quantity),
            percent: Decimal::from(percent),
        })
        .collect()
}

impl Default for TenantPolicy {
    fn default() -> Self {
        // The same amounts in the major currencies; yen amounts are ~150 times larger.
        let currencies = [("EUR", 1), ("USD", 1), ("GBP", 1), ("CHF", 1), ("JPY", 150)]
            .into_iter()
            .map(|(code, scale)| (code.to_owned(), CurrencyRules::tens_of_thousands(scale)))
            .collect();
        Self {
            currencies,
            max_discount_without_approval: Decimal::from(10),
            level_sla_hours: 24,
            volume_discounts: VolumeDiscounts {
                standard: breaks(&[(10, 2), (50, 5)]),
                gold: breaks(&[(10, 5), (50, 8), (100, 10)]),
                enterprise: breaks(&[(10, 8), (50, 12), (100, 15)]),
            },
            mfa_required_roles: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chain_grows_with_the_amount() {
        let policy = TenantPolicy::default();
        assert_eq!(policy.approval_chain(&eur(9_000)), vec![Role::Manager]);
        assert_eq!(
            policy.approval_chain(&eur(50_000)),
            vec![Role::Manager, Role::TenantAdmin]
        );
        assert_eq!(policy.approval_chain(&eur(60_000)).len(), 3);
        // Yen amounts have their own bands: 60,000 JPY is a small sum.
        assert_eq!(
            policy.approval_chain(&money(60_000, "JPY")),
            vec![Role::Manager]
        );
        assert_eq!(policy.approval_chain(&money(60_000, "SEK")), vec![]);
    }

    #[test]
    fn volume_discount_takes_the_highest_break_reached() {
        let policy = TenantPolicy::default();
        assert_eq!(
            policy.volume_discount(Tier::Gold, Decimal::from(9)),
            Decimal::ZERO
        );
        assert_eq!(
            policy.volume_discount(Tier::Gold, Decimal::from(10)),
            Decimal::from(5)
        );
        assert_eq!(
            policy.volume_discount(Tier::Gold, Decimal::from(75)),
            Decimal::from(8)
        );
        assert_eq!(
            policy.volume_discount(Tier::Enterprise, Decimal::from(500)),
            Decimal::from(15)
        );
    }

    #[test]
    fn the_default_policy_is_valid_and_broken_ones_are_named() {
        assert_eq!(TenantPolicy::default().validate(), Ok(()));
        let field_of = |policy: TenantPolicy| match policy.validate() {
            Err(DomainError::InvalidField { field, .. }) => field,
            other => panic!("expected an invalid field, got {other:?}"),
        };
        let eur_rules = |policy: &mut TenantPolicy| policy.currencies.get_mut("EUR").cloned();
        let mut open_ended = TenantPolicy::default();
        let mut rules = eur_rules(&mut open_ended).unwrap();
        rules.approval_bands.pop();
        open_ended.currencies.insert("EUR".into(), rules);
        assert_eq!(field_of(open_ended), "currencies.EUR.approval_bands");
        let mut viewer_chain = TenantPolicy::default();
        let mut rules = eur_rules(&mut viewer_chain).unwrap();
        rules.approval_bands[0].levels = vec![Role::Viewer];
        viewer_chain.currencies.insert("EUR".into(), rules);
        assert_eq!(field_of(viewer_chain), "currencies.EUR.approval_bands");
        for code in ["XAU", "ZZZ", "eur"] {
            let mut odd = TenantPolicy::default();
            let rules = eur_rules(&mut odd).unwrap();
            odd.currencies.insert(code.into(), rules);
            assert_eq!(field_of(odd), format!("currencies.{code}"));
        }
        let none = TenantPolicy {
            currencies: BTreeMap::new(),
            ..TenantPolicy::default()
        };
        assert_eq!(field_of(none), "currencies");
        let mut greedy = TenantPolicy::default();
        greedy.volume_discounts.gold[0].percent = Decimal::from(120);
        assert_eq!(field_of(greedy), "volume_discounts.gold");
        let no_time = TenantPolicy {
            level_sla_hours: 0,
            ..TenantPolicy::default()
        };
        assert_eq!(field_of(no_time), "level_sla_hours");
    }

    #[test]
    fn approval_is_needed_above_the_threshold_or_a_large_discount() {
        let policy = TenantPolicy::default();
        assert!(!policy.needs_approval(&eur(10_000), Decimal::from(10)));
        assert!(policy.needs_approval(&eur(10_001), Decimal::ZERO));
        assert!(policy.needs_approval(&eur(100), Decimal::from(11)));
        // Per currency: 9,999 yen is far below the yen threshold; a currency the tenant does
        // not trade in always needs approval.
        assert!(!policy.needs_approval(&money(1_400_000, "JPY"), Decimal::ZERO));
        assert!(policy.needs_approval(&money(1_600_000, "JPY"), Decimal::ZERO));
        assert!(policy.needs_approval(&money(1, "SEK"), Decimal::ZERO));
    }

    #[test]
    fn only_the_tenants_currencies_are_allowed() {
        let policy = TenantPolicy::default();
        let code = |c: &str| CurrencyCode::parse("currency", c).unwrap();
        assert_eq!(policy.allow(&code("EUR")), Ok(()));
        assert!(matches!(
            policy.allow(&code("SEK")),
            Err(DomainError::RuleViolated {
                code: RuleCode::CurrencyNotAllowed,
                ..
            })
        ));
    }

    fn money(amount: i64, currency: &str) -> Money {
        Money::new(
            Decimal::from(amount),
            CurrencyCode::parse("c", currency).unwrap(),
        )
    }

    fn eur(amount: i64) -> Money {
        money(amount, "EUR")
    }
}
