//! Tenant configuration the rules read: when a quote needs approval, which chain of approver
//! roles an amount needs, the volume-discount breaks of each account tier, and approval SLAs.
//! Stored per tenant; `TenantPolicy::default()` is what a new tenant starts with.
use chrono::Duration;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::account::Tier;
use crate::{DomainError, Role};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TenantPolicy {
    /// A quote whose total exceeds this (in its own currency) needs approval.
    #[serde(with = "rust_decimal::serde::str")]
    pub approval_threshold: Decimal,
    /// A quote-level discount above this percentage needs approval whatever the total.
    #[serde(with = "rust_decimal::serde::str")]
    pub max_discount_without_approval: Decimal,
    /// Chains by amount: the first band whose `up_to` is at least the amount applies; a band
    /// without `up_to` takes everything above.
    pub approval_bands: Vec<ApprovalBand>,
    /// Hours each approval level has before it escalates.
    pub level_sla_hours: i64,
    pub volume_discounts: VolumeDiscounts,
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
    /// The roles that must approve `amount`, one level each, in order.
    pub fn approval_chain(&self, amount: Decimal) -> Vec<Role> {
        self.approval_bands
            .iter()
            .find(|band| band.up_to.is_none_or(|limit| amount <= limit))
            .map(|band| band.levels.clone())
            .unwrap_or_default()
    }

    /// Whether a quote with this total and quote-level discount needs approval.
    pub fn needs_approval(&self, total: Decimal, discount_percent: Decimal) -> bool {
        total > self.approval_threshold || discount_percent > self.max_discount_without_approval
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
        if self.approval_threshold < Decimal::ZERO {
            return Err(DomainError::invalid(
                "approval_threshold",
                "must not be negative",
            ));
        }
        percent(
            "max_discount_without_approval",
            self.max_discount_without_approval,
        )?;
        if self.level_sla_hours <= 0 {
            return Err(DomainError::invalid("level_sla_hours", "must be positive"));
        }
        self.validate_bands()?;
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

    fn validate_bands(&self) -> Result<(), DomainError> {
        let bands = &self.approval_bands;
        let well_ordered = bands.split_last().is_some_and(|(last, bounded)| {
            last.up_to.is_none()
                && bounded.iter().all(|b| b.up_to.is_some())
                && bounded.windows(2).all(|w| w[0].up_to < w[1].up_to)
        });
        if !well_ordered {
            return Err(DomainError::invalid(
                "approval_bands",
                "must ascend by up_to and end with a band without up_to",
            ));
        }
        let allowed = [Role::Operator, Role::Manager, Role::TenantAdmin];
        if bands
            .iter()
            .any(|b| b.levels.is_empty() || b.levels.iter().any(|r| !allowed.contains(r)))
        {
            return Err(DomainError::invalid(
                "approval_bands",
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
        Self {
            approval_threshold: Decimal::from(10_000),
            max_discount_without_approval: Decimal::from(10),
            approval_bands: vec![
                ApprovalBand {
                    up_to: Some(Decimal::from(10_000)),
                    levels: vec![Role::Manager],
                },
                ApprovalBand {
                    up_to: Some(Decimal::from(50_000)),
                    levels: vec![Role::Manager, Role::TenantAdmin],
                },
                ApprovalBand {
                    up_to: None,
                    levels: vec![Role::Manager, Role::TenantAdmin, Role::TenantAdmin],
                },
            ],
            level_sla_hours: 24,
            volume_discounts: VolumeDiscounts {
                standard: breaks(&[(10, 2), (50, 5)]),
                gold: breaks(&[(10, 5), (50, 8), (100, 10)]),
                enterprise: breaks(&[(10, 8), (50, 12), (100, 15)]),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chain_grows_with_the_amount() {
        let policy = TenantPolicy::default();
        assert_eq!(
            policy.approval_chain(Decimal::from(9_000)),
            vec![Role::Manager]
        );
        assert_eq!(
            policy.approval_chain(Decimal::from(50_000)),
            vec![Role::Manager, Role::TenantAdmin]
        );
        assert_eq!(policy.approval_chain(Decimal::from(60_000)).len(), 3);
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
        let mut open_ended = TenantPolicy::default();
        open_ended.approval_bands.pop();
        assert_eq!(field_of(open_ended), "approval_bands");
        let mut viewer_chain = TenantPolicy::default();
        viewer_chain.approval_bands[0].levels = vec![Role::Viewer];
        assert_eq!(field_of(viewer_chain), "approval_bands");
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
        assert!(!policy.needs_approval(Decimal::from(10_000), Decimal::from(10)));
        assert!(policy.needs_approval(Decimal::from(10_001), Decimal::ZERO));
        assert!(policy.needs_approval(Decimal::from(100), Decimal::from(11)));
    }
}
