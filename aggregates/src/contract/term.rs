//! The contract's term: activation, renewal, termination and expiry.
use chrono::{Days, NaiveDate};
use rust_decimal::Decimal;

use super::decide::EDITORS;
use super::state::{ContractStatus, Details};
use super::ContractEvent;
use crate::limits::{MONEY, REASON_MAX};
use crate::{Actor, DomainError, Money, Role, RuleCode, Text};

/// Renewal sets a new value without another approval, so it is kept to those who approve.
const RENEWERS: &[Role] = &[Role::TenantAdmin, Role::Manager];

/// An expired contract can still be renewed for this many days after its end date.
const RENEWAL_GRACE_DAYS: u64 = 30;

impl Details {
    pub(super) fn activate(
        &self,
        actor: &Actor,
        today: NaiveDate,
    ) -> Result<Vec<ContractEvent>, DomainError> {
        actor.require_system("ActivateContract")?;
        match self.status {
            // A repeated timer finds it active already.
            ContractStatus::Active => return Ok(vec![]),
            ContractStatus::Approved => {}
            _ => {
                return Err(DomainError::rule(
                    RuleCode::ContractNotApproved,
                    "only an approved contract can be activated",
                ))
            }
        }
        if !(self.customer_signed && self.vendor_signed) {
            return Err(DomainError::rule(
                RuleCode::ContractNotSigned,
                "both the customer and the vendor must sign first",
            ));
        }
        if today < self.start_date {
            return Err(DomainError::rule(
                RuleCode::BeforeStartDate,
                format!("the contract starts on {}", self.start_date),
            ));
        }
        Ok(vec![ContractEvent::ContractActivated {
            account_id: self.account_id,
            activated_on: today,
        }])
    }

    pub(super) fn renew(
        &self,
        actor: &Actor,
        today: NaiveDate,
        new_end_date: NaiveDate,
        new_value: Decimal,
    ) -> Result<Vec<ContractEvent>, DomainError> {
        actor.require_any(RENEWERS, "RenewContract")?;
        let new_value = Money::parse_amount("new_value", new_value, &MONEY, &self.currency)?;
        match self.status {
            ContractStatus::Active => {}
            ContractStatus::Expired => {
                let last_day = self
                    .end_date
                    .checked_add_days(Days::new(RENEWAL_GRACE_DAYS))
                    .unwrap_or(NaiveDate::MAX);
                if today > last_day {
                    return Err(DomainError::rule(
                        RuleCode::RenewalWindowClosed,
                        format!("an expired contract can be renewed until {last_day}"),
                    ));
                }
            }
            _ => {
                return Err(DomainError::rule(
                    RuleCode::ContractNotRenewable,
                    "only an active contract, or one expired within 30 days, can be renewed",
                ))
            }
        }
        if new_end_date <= self.end_date || new_end_date <= today {
            return Err(DomainError::rule(
                RuleCode::RenewalNotLater,
                format!(
                    "the new end date must be after the current one ({}) and in the future",
                    self.end_date
                ),
            ));
        }
        Ok(vec![ContractEvent::ContractRenewed {
            account_id: self.account_id,
            term: self.term + 1,
            previous_end_date: self.end_date,
            new_end_date,
            new_value: new_value.amount,
            currency: new_value.currency,
            reactivated: self.status == ContractStatus::Expired,
        }])
    }

    pub(super) fn terminate(
        &self,
        actor: &Actor,
        today: NaiveDate,
        reason: &str,
        effective_date: NaiveDate,
    ) -> Result<Vec<ContractEvent>, DomainError> {
        actor.require_any(EDITORS, "TerminateContract")?;
        let reason = Text::parse("reason", reason, REASON_MAX)?;
        match self.status {
            ContractStatus::Active => {}
            ContractStatus::Expired | ContractStatus::Terminated | ContractStatus::Cancelled => {
                return Err(DomainError::rule(
                    RuleCode::ContractEnded,
                    "the contract has already ended",
                ))
            }
            ContractStatus::Draft | ContractStatus::Negotiation => {
                return Err(DomainError::rule(
                    RuleCode::ContractNotActive,
                    "only an active contract terminates; cancel a draft with CancelContract",
                ))
            }
            ContractStatus::PendingApproval | ContractStatus::Approved => {
                return Err(DomainError::rule(
                    RuleCode::ContractNotActive,
                    "only an active contract terminates",
                ))
            }
        }
        if effective_date < today || effective_date > self.end_date {
            return Err(DomainError::rule(
                RuleCode::EffectiveDateOutsideTerm,
                format!(
                    "the effective date must be between today and the end date ({}), both \
                     included",
                    self.end_date
                ),
            ));
        }
        Ok(vec![ContractEvent::ContractTerminated {
            account_id: self.account_id,
            reason,
            effective_date,
        }])
    }

    pub(super) fn expire(
        &self,
        actor: &Actor,
        today: NaiveDate,
    ) -> Result<Vec<ContractEvent>, DomainError> {
        actor.require_system("ExpireContract")?;
        match self.status {
            // A repeated or late timer finds the contract ended already.
            ContractStatus::Expired | ContractStatus::Terminated => Ok(vec![]),
            ContractStatus::Active if today < self.end_date => Err(DomainError::rule(
                RuleCode::BeforeEndDate,
                format!("the contract runs until {}", self.end_date),
            )),
            ContractStatus::Active => Ok(vec![ContractEvent::ContractExpired {
                account_id: self.account_id,
                end_date: self.end_date,
            }]),
            _ => Err(DomainError::rule(
                RuleCode::ContractNotActive,
                "only an active contract expires",
            )),
        }
    }
}
