use std::collections::BTreeSet;

use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{AccountCommand, AccountEvent, Services, Tier};
use crate::limits::{NAME_MAX, REASON_MAX};
use crate::{
    Actor, Command, CountryCode, CurrencyCode, DomainError, Email, Money, Role, RuleCode,
    TenantPolicy, Text,
};

/// Who may edit an account's details, and who may change its commercial terms and status.
const EDITORS: &[Role] = &[Role::TenantAdmin, Role::Manager, Role::Operator];
const OWNERS: &[Role] = &[Role::TenantAdmin, Role::Manager];

const QUOTA_MAX: u32 = 1_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccountStatus {
    Prospect,
    Active,
    Suspended,
    Closed,
}

/// What other aggregates' rules need to know about an account, looked up through their
/// services (quotes and contracts are only drafted for open, unsuspended accounts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountFacts {
    pub status: AccountStatus,
    pub currency: CurrencyCode,
    pub tier: Tier,
}

/// The state the rules need; the read model holds everything else.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Account {
    status: Option<AccountStatus>,
    tier: Option<Tier>,
    currency: Option<CurrencyCode>,
    active_contracts: BTreeSet<Uuid>,
}

impl Account {
    pub fn status(&self) -> Option<AccountStatus> {
        self.status
    }

    /// What other aggregates may know of this account; `None` until it is opened.
    pub fn facts(&self) -> Option<AccountFacts> {
        Some(AccountFacts {
            status: self.status?,
            currency: self.currency.clone()?,
            tier: self.tier?,
        })
    }

    /// Decides which events a command produces, without changing anything. Opening needs the
    /// tenant's `policy` (its currencies); nothing else reads it.
    pub fn decide(
        &self,
        command: Command<AccountCommand>,
        policy: Option<&TenantPolicy>,
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
                    policy
                        .ok_or_else(|| DomainError::LookupFailed("tenant policy".into()))?
                        .allow(&currency)?;
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
        if status == AccountStatus::Closed
            && !matches!(body, AccountCommand::RecordContractEnded { .. })
        {
            return Err(DomainError::rule(
                RuleCode::AccountClosed,
                "the account is closed",
            ));
        }
        self.decide_on_open(status, &actor, body)
    }

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
                let Money { amount, currency } = Money::parse_amount("amount", amount, currency)?;
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

impl Aggregate for Account {
    const TYPE: &'static str = "Account";
    type Command = Command<AccountCommand>;
    type Event = AccountEvent;
    type Error = DomainError;
    type Services = Services;

    async fn handle(
        &mut self,
        command: Self::Command,
        services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), DomainError> {
        let opening =
            self.status.is_none() && matches!(command.body, AccountCommand::OpenAccount { .. });
        let policy = match opening {
            true => Some(services.policy(command.tenant_id).await?),
            false => None,
        };
        for event in self.decide(command, policy.as_ref())? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: AccountEvent) {
        use AccountEvent as E;
        match event {
            E::AccountOpened { currency, tier, .. } => {
                self.status = Some(AccountStatus::Prospect);
                self.currency = Some(currency);
                self.tier = Some(tier);
            }
            E::AccountTierChanged { to, .. } => self.tier = Some(to),
            E::AccountSuspended { .. } => self.status = Some(AccountStatus::Suspended),
            E::AccountReinstated {} | E::AccountActivated { .. } => {
                self.status = Some(AccountStatus::Active)
            }
            E::AccountClosed { .. } => self.status = Some(AccountStatus::Closed),
            E::ContractActivatedOnAccount { contract_id } => {
                self.active_contracts.insert(contract_id);
            }
            E::ContractEndedOnAccount { contract_id } => {
                self.active_contracts.remove(&contract_id);
            }
            E::AccountDetailsUpdated { .. } | E::CreditLimitSet { .. } | E::ApiQuotaSet { .. } => {}
        }
    }
}
