//! The account's state, as far as its rules need it, and the `apply` that folds its events into
//! it. cqrs-es's `Aggregate` is implemented here; `handle` is the crate's one generic one.
use std::collections::BTreeSet;

use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{AccountCommand, AccountEvent, Services, Tier};
use crate::{Command, CurrencyCode, DomainError, Personal, PersonalData, Subject};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr)]
pub enum AccountStatus {
    Prospect,
    Active,
    Suspended,
    Closed,
}

impl AccountStatus {
    /// The name the read model (and BI tools filtering on it) use.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
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
    pub(super) status: Option<AccountStatus>,
    pub(super) tier: Option<Tier>,
    pub(super) currency: Option<CurrencyCode>,
    pub(super) active_contracts: BTreeSet<Uuid>,
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
        crate::handle::handle(self, command, services, sink).await
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
            E::AccountDetailsUpdated { .. }
            | E::AccountContactDataForgotten {}
            | E::CreditLimitSet { .. }
            | E::ApiQuotaSet { .. } => {}
        }
    }
}

impl PersonalData for Account {
    /// An account's stream id is its id; its contacts are filed under it.
    fn personal_data(
        &self,
        stream_id: &str,
        event: &AccountEvent,
        _: Option<Uuid>,
    ) -> Option<Personal> {
        use AccountEvent as E;
        // Every event is listed, so a new one has to be decided on here.
        match event {
            // An update's fields left out are null, and the store skips them.
            E::AccountOpened { .. } | E::AccountDetailsUpdated { .. } => Some(Personal {
                subject: Subject::Account(stream_id.parse().ok()?),
                fields: &["legal_name", "billing_email"],
                sign_in: None,
            }),
            E::AccountTierChanged { .. }
            | E::CreditLimitSet { .. }
            | E::ApiQuotaSet { .. }
            | E::AccountSuspended { .. }
            | E::AccountReinstated {}
            | E::AccountClosed { .. }
            | E::AccountActivated { .. }
            | E::ContractActivatedOnAccount { .. }
            | E::ContractEndedOnAccount { .. }
            | E::AccountContactDataForgotten {} => None,
        }
    }
}
