use chrono::{DateTime, NaiveDate, Utc};
use cqrs_es::DomainEvent;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::quote::Unit;
use crate::{CurrencyCode, Email, Text};

/// Who a signature binds: the account (customer) or the tenant itself (vendor).
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
pub enum Party {
    Customer,
    Vendor,
}

impl Party {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// A line copied from the accepted quote; informational once copied (the value is the
/// contract's own and may be amended).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContractLine {
    pub sku: Text,
    pub description: Text,
    #[serde(with = "rust_decimal::serde::str")]
    pub quantity: Decimal,
    pub unit: Unit,
    #[serde(with = "rust_decimal::serde::str")]
    pub unit_price: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    pub volume_discount_percent: Decimal,
}

/// Every contract starts at version 1; each amendment makes the next version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ContractEvent {
    ContractDrafted {
        account_id: Uuid,
        title: Text,
        #[serde(with = "rust_decimal::serde::str")]
        value: Decimal,
        currency: CurrencyCode,
        start_date: NaiveDate,
        end_date: NaiveDate,
        terms: Text,
    },
    /// `value` is the quote's total.
    ContractDraftedFromQuote {
        quote_id: Uuid,
        account_id: Uuid,
        title: Text,
        lines: Vec<ContractLine>,
        #[serde(with = "rust_decimal::serde::str")]
        value: Decimal,
        currency: CurrencyCode,
        start_date: NaiveDate,
        end_date: NaiveDate,
        terms: Text,
    },
    /// Carries the new version and only the fields that changed.
    ContractAmended {
        version: u32,
        terms: Option<Text>,
        #[serde(with = "rust_decimal::serde::str_option")]
        value: Option<Decimal>,
    },
    /// What the approval request needs: the version submitted and its amount. The requester
    /// is the event's user (metadata).
    ContractSubmitted {
        version: u32,
        #[serde(with = "rust_decimal::serde::str")]
        value: Decimal,
        currency: CurrencyCode,
    },
    ContractApproved {
        approval_id: Uuid,
        version: u32,
    },
    /// Back to Negotiation: the contract may be amended and submitted again.
    ContractRejected {
        approval_id: Uuid,
        version: u32,
        reason: Text,
    },
    ContractSigned {
        party: Party,
        signatory_name: Text,
        signatory_email: Email,
        signed_at: DateTime<Utc>,
    },
    ContractActivated {
        account_id: Uuid,
        activated_on: NaiveDate,
    },
    /// A new term: `term` counts them from 1 (the first). `reactivated` is true when the
    /// contract had expired and is Active again.
    ContractRenewed {
        account_id: Uuid,
        term: u32,
        previous_end_date: NaiveDate,
        new_end_date: NaiveDate,
        #[serde(with = "rust_decimal::serde::str")]
        new_value: Decimal,
        currency: CurrencyCode,
        reactivated: bool,
    },
    ContractTerminated {
        account_id: Uuid,
        reason: Text,
        effective_date: NaiveDate,
    },
    ContractExpired {
        account_id: Uuid,
        end_date: NaiveDate,
    },
    /// An abandoned contract that never became active; it never counted as an active contract
    /// of its account.
    ContractCancelled {
        reason: Text,
    },
}

impl DomainEvent for ContractEvent {
    fn event_type(&self) -> String {
        let name = match self {
            Self::ContractDrafted { .. } => "ContractDrafted",
            Self::ContractDraftedFromQuote { .. } => "ContractDraftedFromQuote",
            Self::ContractAmended { .. } => "ContractAmended",
            Self::ContractSubmitted { .. } => "ContractSubmitted",
            Self::ContractApproved { .. } => "ContractApproved",
            Self::ContractRejected { .. } => "ContractRejected",
            Self::ContractSigned { .. } => "ContractSigned",
            Self::ContractActivated { .. } => "ContractActivated",
            Self::ContractRenewed { .. } => "ContractRenewed",
            Self::ContractTerminated { .. } => "ContractTerminated",
            Self::ContractExpired { .. } => "ContractExpired",
            Self::ContractCancelled { .. } => "ContractCancelled",
        };
        name.to_owned()
    }

    /// `ContractDraftedFromQuote` 1.1: the copied lines have a unit.
    fn event_version(&self) -> String {
        match self {
            Self::ContractDraftedFromQuote { .. } => "1.1",
            _ => "1.0",
        }
        .to_owned()
    }
}

impl crate::EventSchema for ContractEvent {
    const UPCASTERS: &'static [crate::Upcaster] = &[crate::Upcaster {
        event_type: "ContractDraftedFromQuote",
        from: "1.0",
        to: "1.1",
        rewrite: crate::quote::lines_counted_in_pieces,
    }];
}
