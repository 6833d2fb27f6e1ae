use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Deserialize;
use uuid::Uuid;

use super::Unit;

/// Commands as clients send them: raw fields, validated by the aggregate. Externally tagged
/// (`{"SubmitQuote": {}}`); the HTTP layer maps its `{"type": ...}` form onto this. Every decimal
/// (money, quantities, percentages) travels as a string so no float ever touches it.
#[derive(Debug, Clone, PartialEq, Deserialize, schemars::JsonSchema, strum::IntoStaticStr)]
#[serde(deny_unknown_fields)]
pub enum QuoteCommand {
    /// Currency and tier come from the account, not from the client.
    DraftQuote {
        account_id: Uuid,
        title: String,
        valid_until: DateTime<Utc>,
    },
    /// `line_id` is chosen by the client so it can address the line before any read model
    /// has caught up. The unit price is in the quote's currency.
    AddLineItem {
        line_id: Uuid,
        sku: String,
        description: String,
        #[schemars(with = "String", extend("format" = "decimal"))]
        #[serde(deserialize_with = "crate::decimal::wire::deserialize")]
        quantity: Decimal,
        /// What the quantity counts; pieces when left out.
        #[serde(default)]
        unit: Unit,
        #[schemars(with = "String", extend("format" = "decimal"))]
        #[serde(deserialize_with = "crate::decimal::wire::deserialize")]
        unit_price: Decimal,
    },
    /// Changes the fields that are present; at least one must be.
    ChangeLineItem {
        line_id: Uuid,
        #[schemars(with = "Option<String>", extend("format" = "decimal"))]
        #[serde(default, deserialize_with = "crate::decimal::wire_option::deserialize")]
        quantity: Option<Decimal>,
        #[schemars(with = "Option<String>", extend("format" = "decimal"))]
        #[serde(default, deserialize_with = "crate::decimal::wire_option::deserialize")]
        unit_price: Option<Decimal>,
        description: Option<String>,
    },
    RemoveLineItem {
        line_id: Uuid,
    },
    SetQuoteDiscount {
        #[schemars(with = "String", extend("format" = "decimal"))]
        #[serde(deserialize_with = "crate::decimal::wire::deserialize")]
        percent: Decimal,
        reason: String,
    },
    SubmitQuote {},
    /// Issued by the approval process when the approval request is granted.
    MarkQuoteApproved {
        approval_id: Uuid,
    },
    /// Issued by the approval process when the approval request is rejected.
    MarkQuoteRejected {
        approval_id: Uuid,
        reason: String,
    },
    /// Takes a rejected quote back to draft so it can be reworked and submitted again.
    ReviseQuote {},
    SendQuote {},
    AcceptQuote {},
    DeclineQuote {
        reason: String,
    },
    WithdrawQuote {
        reason: String,
    },
    /// Issued by the expiry timer once `valid_until` has passed.
    ExpireQuote {},
}

impl crate::CommandSet for QuoteCommand {
    fn name(&self) -> &'static str {
        self.into()
    }

    const AT_LEAST_ONE_OF: &'static [(&'static str, &'static [&'static str])] =
        &[("ChangeLineItem", &["quantity", "unit_price", "description"])];
    const SYSTEM_ONLY: &'static [&'static str] =
        &["MarkQuoteApproved", "MarkQuoteRejected", "ExpireQuote"];
}

impl QuoteCommand {
    pub fn name(&self) -> &'static str {
        match self {
            Self::DraftQuote { .. } => "DraftQuote",
            Self::AddLineItem { .. } => "AddLineItem",
            Self::ChangeLineItem { .. } => "ChangeLineItem",
            Self::RemoveLineItem { .. } => "RemoveLineItem",
            Self::SetQuoteDiscount { .. } => "SetQuoteDiscount",
            Self::SubmitQuote {} => "SubmitQuote",
            Self::MarkQuoteApproved { .. } => "MarkQuoteApproved",
            Self::MarkQuoteRejected { .. } => "MarkQuoteRejected",
            Self::ReviseQuote {} => "ReviseQuote",
            Self::SendQuote {} => "SendQuote",
            Self::AcceptQuote {} => "AcceptQuote",
            Self::DeclineQuote { .. } => "DeclineQuote",
            Self::WithdrawQuote { .. } => "WithdrawQuote",
            Self::ExpireQuote {} => "ExpireQuote",
        }
    }
}
