use rust_decimal::Decimal;
use serde::Deserialize;
use uuid::Uuid;

use super::Tier;

/// Commands as clients send them: raw fields, validated by the aggregate. Externally tagged
/// (`{"ChangeTier": {"tier": "Gold"}}`); the HTTP layer maps its `{"type": ...}` form onto this.
#[derive(Debug, Clone, PartialEq, Deserialize, schemars::JsonSchema, strum::IntoStaticStr)]
#[serde(deny_unknown_fields)]
pub enum AccountCommand {
    OpenAccount {
        name: String,
        legal_name: String,
        country: String,
        billing_email: String,
        currency: String,
        tier: Tier,
    },
    /// Changes the fields that are present; at least one must be.
    UpdateAccountDetails {
        name: Option<String>,
        legal_name: Option<String>,
        country: Option<String>,
        billing_email: Option<String>,
    },
    ChangeTier {
        tier: Tier,
    },
    /// In the account's currency.
    SetCreditLimit {
        #[schemars(with = "String", extend("format" = "decimal"))]
        #[serde(deserialize_with = "crate::decimal::wire::deserialize")]
        amount: Decimal,
    },
    SetApiQuota {
        #[serde(deserialize_with = "crate::decimal::whole_u32")]
        requests_per_minute: u32,
    },
    SuspendAccount {
        reason: String,
    },
    ReinstateAccount {},
    CloseAccount {
        reason: String,
    },
    /// Issued by the quote-acceptance process: the first accepted quote makes a Prospect Active.
    ActivateAccount {
        quote_id: Uuid,
    },
    /// Issued by the contract process, so closing can check for active contracts.
    RecordContractActivated {
        contract_id: Uuid,
    },
    RecordContractEnded {
        contract_id: Uuid,
    },
    /// Erases the account's contact data for good (GDPR erasure): its legal name, billing
    /// e-mail and the customer signatories of its contracts. Closed accounts too.
    ForgetContactData {},
}

impl crate::CommandSet for AccountCommand {
    fn name(&self) -> &'static str {
        self.into()
    }

    const AT_LEAST_ONE_OF: &'static [(&'static str, &'static [&'static str])] = &[(
        "UpdateAccountDetails",
        &["name", "legal_name", "country", "billing_email"],
    )];
    const SYSTEM_ONLY: &'static [&'static str] = &[
        "ActivateAccount",
        "RecordContractActivated",
        "RecordContractEnded",
    ];
}

impl AccountCommand {
    pub fn name(&self) -> &'static str {
        match self {
            Self::OpenAccount { .. } => "OpenAccount",
            Self::UpdateAccountDetails { .. } => "UpdateAccountDetails",
            Self::ChangeTier { .. } => "ChangeTier",
            Self::SetCreditLimit { .. } => "SetCreditLimit",
            Self::SetApiQuota { .. } => "SetApiQuota",
            Self::SuspendAccount { .. } => "SuspendAccount",
            Self::ReinstateAccount {} => "ReinstateAccount",
            Self::CloseAccount { .. } => "CloseAccount",
            Self::ActivateAccount { .. } => "ActivateAccount",
            Self::RecordContractActivated { .. } => "RecordContractActivated",
            Self::RecordContractEnded { .. } => "RecordContractEnded",
            Self::ForgetContactData {} => "ForgetContactData",
        }
    }
}
