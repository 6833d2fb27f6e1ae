//! The account's rules: `decide` returns the events a command produces without changing
//! anything.
use super::facts::{Facts, Services};
use super::{Account, AccountCommand, AccountEvent, AccountStatus, Tier};
use crate::handle::Decide;
use crate::limits::{MONEY, NAME_MAX, QUOTA_MAX, REASON_MAX};
use crate::{
    Actor, Command, CountryCode, CurrencyCode, DomainError, Email, Money, Role, RuleCode, Text,
};

/// Who may edit an account's details, and who may change its commercial terms and status.
const EDITORS: &[Role] = &[Role::TenantAdmin, Role::Manager, Role::Operator];
const OWNERS: &[Role] = &[Role::TenantAdmin, Role::Manager];
/// Who may have the account's contacts forgotten.
const ADMINS: &[Role] = &[Role::TenantAdmin];

impl Decide for Account {
    type Facts = Facts;

    async fn gather(
        &self,
        command: &Command<AccountCommand>,
        services: &Services,
    ) -> Result<Facts, DomainError> {
        Facts::gather(services.as_ref(), self, command).await
    }

    fn decide(
        &self,
        command: Command<AccountCommand>,
        facts: &Facts,
    ) -> Result<Vec<AccountEvent>, DomainError> {
        let Command { actor, body, .. } = command;
        let Some(status) = self.status else {
            return match body {
                AccountCommand::OpenAccount {
                    name,
                    legal_name,
                    country,
                    billing_email,
                    currency,
                    tier,
                } => {
                    actor.require_any(EDITORS, "OpenAccount")?;
                    let name = Text::parse("name", &name, NAME_MAX)?;
                    let legal_name = Text::parse("legal_name", &legal_name, NAME_MAX)?;
                    let country = CountryCode::parse("country", &country)?;
                    let billing_email = Email::parse("billing_email", &billing_email)?;
                    let currency = CurrencyCode::parse("currency", &currency)?;
                    facts.policy()?.allow(&currency)?;
                    Ok(vec![AccountEvent::AccountOpened {
                        name,
                        legal_name,
                        country,
                        billing_email,
                        currency,
                        tier,
                    }])
                }
                _ => Err(DomainError::NotFound("account")),
            };
        };
        // Erasure is a legal duty, so it outlives the account.
        if status == AccountStatus::Closed
            && !matches!(
                body,
                AccountCommand::RecordContractEnded { .. } | AccountCommand::ForgetContactData {}
            )
        {
            return Err(DomainError::rule(
                RuleCode::AccountClosed,
                "the account is closed",
            ));
        }
        self.decide_on_open(status, &actor, body)
    }
}

impl Account {
    fn decide_on_open(
        &self,
        status: AccountStatus,
        actor: &Actor,
        body: AccountCommand,
    ) -> Result<Vec<AccountEvent>, DomainError> {
        use AccountCommand as C;
        use AccountEvent as E;
        let name = body.name();
        match body {
            C::OpenAccount { .. } => Err(DomainError::rule(
                RuleCode::AccountExists,
                "an account with this id is already open",
            )),
            C::UpdateAccountDetails {
                name: new_name,
                legal_name,
                country,
                billing_email,
            } => {
                actor.require_any(EDITORS, name)?;
                let event = E::AccountDetailsUpdated {
                    name: new_name
                        .map(|v| Text::parse("name", &v, NAME_MAX))
                        .transpose()?,
                    legal_name: legal_name
                        .map(|v| Text::parse("legal_name", &v, NAME_MAX))
                        .transpose()?,
                    country: country
                        .map(|v| CountryCode::parse("country", &v))
                        .transpose()?,
                    billing_email: billing_email
                        .map(|v| Email::parse("billing_email", &v))
                        .transpose()?,
                };
                if event == Self::empty_details_update() {
                    return Err(DomainError::invalid(
                        "body",
                        "name at least one field to change",
                    ));
                }
                Ok(vec![event])
            }
            C::ChangeTier { tier } => {
                actor.require_any(OWNERS, name)?;
                let from = self.tier.unwrap_or(Tier::Standard);
                if from == tier {
                    return Ok(vec![]);
                }
                Ok(vec![E::AccountTierChanged { from, to: tier }])
            }
            C::SetCreditLimit { amount } => {
                actor.require_any(OWNERS, name)?;
                let currency = self
                    .currency
                    .as_ref()
                    .expect("an open account has a currency");
                let Money { amount, currency } =
                    Money::parse_amount("amount", amount, &MONEY, currency)?;
                Ok(vec![E::CreditLimitSet { amount, currency }])
            }
            C::SetApiQuota {
                requests_per_minute,
            } => {
                actor.require_any(OWNERS, name)?;
                if requests_per_minute == 0 || requests_per_minute > QUOTA_MAX {
                    return Err(DomainError::invalid(
                        "requests_per_minute",
                        format!("must be between 1 and {QUOTA_MAX}"),
                    ));
                }
                Ok(vec![E::ApiQuotaSet {
                    requests_per_minute,
                }])
            }
            C::SuspendAccount { reason } => {
                actor.require_any(OWNERS, name)?;
                let reason = Text::parse("reason", &reason, REASON_MAX)?;
                if status != AccountStatus::Active {
                    return Err(DomainError::rule(
                        RuleCode::AccountNotActive,
                        "only an active account can be suspended",
                    ));
                }
                Ok(vec![E::AccountSuspended { reason }])
            }
            C::ReinstateAccount {} => {
                actor.require_any(OWNERS, name)?;
                if status != AccountStatus::Suspended {
                    return Err(DomainError::rule(
                        RuleCode::AccountNotSuspended,
                        "only a suspended account can be reinstated",
                    ));
                }
                Ok(vec![E::AccountReinstated {}])
            }
            C::CloseAccount { reason } => {
                actor.require_any(OWNERS, name)?;
                let reason = Text::parse("reason", &reason, REASON_MAX)?;
                if !self.active_contracts.is_empty() {
                    return Err(DomainError::rule(
                        RuleCode::AccountHasActiveContracts,
                        format!(
                            "the account still has {} active contract(s)",
                            self.active_contracts.len()
                        ),
                    ));
                }
                Ok(vec![E::AccountClosed { reason }])
            }
            C::ActivateAccount { quote_id } => {
                actor.require_system(name)?;
                // Only the first accepted quote activates; later ones change nothing.
                if status != AccountStatus::Prospect {
                    return Ok(vec![]);
                }
                Ok(vec![E::AccountActivated { quote_id }])
            }
            C::RecordContractActivated { contract_id } => {
                actor.require_system(name)?;
                if self.active_contracts.contains(&contract_id) {
                    return Ok(vec![]);
                }
                Ok(vec![E::ContractActivatedOnAccount { contract_id }])
            }
            C::RecordContractEnded { contract_id } => {
                actor.require_system(name)?;
                if !self.active_contracts.contains(&contract_id) {
                    return Ok(vec![]);
                }
                Ok(vec![E::ContractEndedOnAccount { contract_id }])
            }
            // Recorded every time: since the last one, contact data may have been sealed on
            // other streams (a signature on one of its contracts), where this one cannot see.
            C::ForgetContactData {} => {
                actor.require_person(ADMINS, name)?;
                Ok(vec![E::AccountContactDataForgotten {}])
            }
        }
    }

    fn empty_details_update() -> AccountEvent {
        AccountEvent::AccountDetailsUpdated {
            name: None,
            legal_name: None,
            country: None,
            billing_email: None,
        }
    }
}
