use cqrs_es::DomainEvent;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{CountryCode, CurrencyCode, Email, Text};

/// The tier selects the volume-discount table quotes use.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
    strum::IntoStaticStr,
)]
pub enum Tier {
    Standard,
    Gold,
    Enterprise,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AccountEvent {
    AccountOpened {
        name: Text,
        legal_name: Text,
        country: CountryCode,
        billing_email: Email,
        currency: CurrencyCode,
        tier: Tier,
    },
    AccountDetailsUpdated {
        name: Option<Text>,
        legal_name: Option<Text>,
        country: Option<CountryCode>,
        billing_email: Option<Email>,
    },
    AccountTierChanged {
        from: Tier,
        to: Tier,
    },
    CreditLimitSet {
        #[serde(with = "rust_decimal::serde::str")]
        amount: Decimal,
        currency: CurrencyCode,
    },
    ApiQuotaSet {
        requests_per_minute: u32,
    },
    AccountSuspended {
        reason: Text,
    },
    AccountReinstated {},
    AccountClosed {
        reason: Text,
    },
    AccountActivated {
        quote_id: Uuid,
    },
    ContractActivatedOnAccount {
        contract_id: Uuid,
    },
    ContractEndedOnAccount {
        contract_id: Uuid,
    },
    /// The account's contact data is erased: the store forgets the account's keys, so its
    /// legal name, billing e-mail and customer signatories read as [`crate::ERASED`].
    AccountContactDataForgotten {},
}

impl DomainEvent for AccountEvent {
    fn event_type(&self) -> String {
        let name = match self {
            Self::AccountOpened { .. } => "AccountOpened",
            Self::AccountDetailsUpdated { .. } => "AccountDetailsUpdated",
            Self::AccountTierChanged { .. } => "AccountTierChanged",
            Self::CreditLimitSet { .. } => "CreditLimitSet",
            Self::ApiQuotaSet { .. } => "ApiQuotaSet",
            Self::AccountSuspended { .. } => "AccountSuspended",
            Self::AccountReinstated {} => "AccountReinstated",
            Self::AccountClosed { .. } => "AccountClosed",
            Self::AccountActivated { .. } => "AccountActivated",
            Self::ContractActivatedOnAccount { .. } => "ContractActivatedOnAccount",
            Self::ContractEndedOnAccount { .. } => "ContractEndedOnAccount",
            Self::AccountContactDataForgotten {} => "AccountContactDataForgotten",
        };
        name.to_owned()
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}

/// Every version stored so far reads as stored.
impl crate::EventSchema for AccountEvent {}
