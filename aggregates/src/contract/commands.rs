use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::Deserialize;
use uuid::Uuid;

use super::Party;

/// Commands as clients send them: raw fields, validated by the aggregate. Externally tagged
/// (`{"SignContract": {"party": "Customer", ...}}`); the HTTP layer maps its `{"type": ...}`
/// form onto this. Money travels as decimal strings, dates as ISO 8601 (`2025-01-31`).
#[derive(Debug, Clone, PartialEq, Deserialize, schemars::JsonSchema, strum::IntoStaticStr)]
#[serde(deny_unknown_fields)]
pub enum ContractCommand {
    DraftContract {
        account_id: Uuid,
        title: String,
        /// In `currency`.
        #[schemars(with = "String", extend("format" = "decimal"))]
        #[serde(deserialize_with = "crate::decimal::wire::deserialize")]
        value: Decimal,
        currency: String,
        start_date: NaiveDate,
        /// After `start_date`.
        end_date: NaiveDate,
        terms: String,
    },
    /// Issued by the quote-acceptance process: the contract copies the accepted quote's lines
    /// and its total becomes the contract's value.
    DraftContractFromQuote {
        quote_id: Uuid,
        account_id: Uuid,
        title: String,
        lines: Vec<QuoteLine>,
        #[schemars(with = "String", extend("format" = "decimal"))]
        #[serde(with = "rust_decimal::serde::str")]
        total: Decimal,
        currency: String,
        start_date: NaiveDate,
        end_date: NaiveDate,
        terms: String,
    },
    /// Changes the fields that are present (at least one) and makes a new contract version.
    AmendContract {
        terms: Option<String>,
        #[schemars(with = "Option<String>", extend("format" = "decimal"))]
        #[serde(default, deserialize_with = "crate::decimal::wire_option::deserialize")]
        value: Option<Decimal>,
    },
    SubmitContract {},
    /// Issued by the approval process with the outcome of the approval request.
    MarkContractApproved {
        approval_id: Uuid,
    },
    MarkContractRejected {
        approval_id: Uuid,
        reason: String,
    },
    SignContract {
        party: Party,
        signatory_name: String,
        signatory_email: String,
    },
    /// Issued by a timer on the start date, or once both parties signed if that is later.
    ActivateContract {},
    RenewContract {
        new_end_date: NaiveDate,
        #[schemars(with = "String", extend("format" = "decimal"))]
        #[serde(deserialize_with = "crate::decimal::wire::deserialize")]
        new_value: Decimal,
    },
    /// Ends an active contract.
    TerminateContract {
        reason: String,
        effective_date: NaiveDate,
    },
    /// Abandons a contract that never became active (Draft, Negotiation, or Approved but not
    /// activated, e.g. never signed).
    CancelContract {
        reason: String,
    },
    /// Issued by a timer on the end date.
    ExpireContract {},
}

/// One line of the accepted quote, as the acceptance process copies it.
#[derive(Debug, Clone, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QuoteLine {
    pub sku: String,
    pub description: String,
    #[schemars(with = "String", extend("format" = "decimal"))]
    #[serde(with = "rust_decimal::serde::str")]
    pub quantity: Decimal,
    /// What the quantity counts; pieces when left out.
    #[serde(default)]
    pub unit: crate::quote::Unit,
    #[schemars(with = "String", extend("format" = "decimal"))]
    #[serde(with = "rust_decimal::serde::str")]
    pub unit_price: Decimal,
    #[schemars(with = "String", extend("format" = "decimal"))]
    #[serde(with = "rust_decimal::serde::str")]
    pub volume_discount_percent: Decimal,
}

impl crate::CommandSet for ContractCommand {
    fn name(&self) -> &'static str {
        self.into()
    }

    const AT_LEAST_ONE_OF: &'static [(&'static str, &'static [&'static str])] =
        &[("AmendContract", &["terms", "value"])];
    const SYSTEM_ONLY: &'static [&'static str] = &[
        "DraftContractFromQuote",
        "MarkContractApproved",
        "MarkContractRejected",
        "ActivateContract",
        "ExpireContract",
    ];
}

impl ContractCommand {
    pub fn name(&self) -> &'static str {
        match self {
            Self::DraftContract { .. } => "DraftContract",
            Self::DraftContractFromQuote { .. } => "DraftContractFromQuote",
            Self::AmendContract { .. } => "AmendContract",
            Self::SubmitContract {} => "SubmitContract",
            Self::MarkContractApproved { .. } => "MarkContractApproved",
            Self::MarkContractRejected { .. } => "MarkContractRejected",
            Self::SignContract { .. } => "SignContract",
            Self::ActivateContract {} => "ActivateContract",
            Self::RenewContract { .. } => "RenewContract",
            Self::TerminateContract { .. } => "TerminateContract",
            Self::CancelContract { .. } => "CancelContract",
            Self::ExpireContract {} => "ExpireContract",
        }
    }
}
