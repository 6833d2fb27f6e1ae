use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::pricing::{LinePrice, QuoteTotals};
use crate::account::Tier;
use crate::{CurrencyCode, Role, Text};

/// One line of a quote as it stands. The volume-discount percentage is fixed when the line's
/// quantity is set, so replaying a quote never depends on today's tenant policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineItem {
    pub line_id: Uuid,
    pub sku: Text,
    pub description: Text,
    #[serde(with = "rust_decimal::serde::str")]
    pub quantity: Decimal,
    /// In the quote's currency.
    #[serde(with = "rust_decimal::serde::str")]
    pub unit_price: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    pub volume_discount_percent: Decimal,
}

impl LineItem {
    pub fn price(&self) -> LinePrice {
        LinePrice {
            quantity: self.quantity,
            unit_price: self.unit_price,
            volume_discount_percent: self.volume_discount_percent,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum QuoteEvent {
    /// Currency and tier are the account's at drafting; later account changes do not reprice.
    QuoteDrafted {
        account_id: Uuid,
        title: Text,
        currency: CurrencyCode,
        tier: Tier,
        valid_until: DateTime<Utc>,
    },
    LineItemAdded {
        line_id: Uuid,
        sku: Text,
        description: Text,
        #[serde(with = "rust_decimal::serde::str")]
        quantity: Decimal,
        #[serde(with = "rust_decimal::serde::str")]
        unit_price: Decimal,
        #[serde(with = "rust_decimal::serde::str")]
        volume_discount_percent: Decimal,
    },
    /// Carries only the fields that changed, plus the line's volume discount afterwards.
    LineItemChanged {
        line_id: Uuid,
        #[serde(default, with = "rust_decimal::serde::str_option")]
        quantity: Option<Decimal>,
        #[serde(default, with = "rust_decimal::serde::str_option")]
        unit_price: Option<Decimal>,
        description: Option<Text>,
        #[serde(with = "rust_decimal::serde::str")]
        volume_discount_percent: Decimal,
    },
    LineItemRemoved {
        line_id: Uuid,
    },
    QuoteDiscountSet {
        #[serde(with = "rust_decimal::serde::str")]
        percent: Decimal,
        reason: Text,
    },
    /// Everything the approval process needs to request an approval without reading the
    /// quote: the amount and currency (`totals.total`), the discount, and who asked (who may
    /// then not approve). `approval_chain` records what the tenant's policy asked for at
    /// submission (empty when no approval is needed); the approval request computes its own
    /// levels. `submission` counts from 1 and tells this submission from later resubmissions.
    QuoteSubmitted {
        submission: u32,
        requester: Uuid,
        totals: QuoteTotals,
        #[serde(with = "rust_decimal::serde::str")]
        discount_percent: Decimal,
        needs_approval: bool,
        approval_chain: Vec<Role>,
    },
    /// `approval_id` is `None` when the quote needed no approval and was approved on submission.
    QuoteApproved {
        approval_id: Option<Uuid>,
    },
    QuoteRejected {
        approval_id: Uuid,
        reason: Text,
    },
    QuoteRevised {},
    QuoteSent {},
    /// Carries the accepted terms so the acceptance process can draft the contract and
    /// activate the account without reading the quote.
    QuoteAccepted {
        account_id: Uuid,
        title: Text,
        lines: Vec<LineItem>,
        totals: QuoteTotals,
    },
    QuoteDeclined {
        reason: Text,
    },
    QuoteWithdrawn {
        reason: Text,
    },
    QuoteExpired {},
}

impl DomainEvent for QuoteEvent {
    fn event_type(&self) -> String {
        let name = match self {
            Self::QuoteDrafted { .. } => "QuoteDrafted",
            Self::LineItemAdded { .. } => "LineItemAdded",
            Self::LineItemChanged { .. } => "LineItemChanged",
            Self::LineItemRemoved { .. } => "LineItemRemoved",
            Self::QuoteDiscountSet { .. } => "QuoteDiscountSet",
            Self::QuoteSubmitted { .. } => "QuoteSubmitted",
            Self::QuoteApproved { .. } => "QuoteApproved",
            Self::QuoteRejected { .. } => "QuoteRejected",
            Self::QuoteRevised {} => "QuoteRevised",
            Self::QuoteSent {} => "QuoteSent",
            Self::QuoteAccepted { .. } => "QuoteAccepted",
            Self::QuoteDeclined { .. } => "QuoteDeclined",
            Self::QuoteWithdrawn { .. } => "QuoteWithdrawn",
            Self::QuoteExpired {} => "QuoteExpired",
        };
        name.to_owned()
    }

    /// 1.1: `totals.subtotal` is the gross (quantity × unit price); in 1.0 events it was net
    /// of the line discounts. Readers take older totals through [`QuoteEvent::upcast`].
    fn event_version(&self) -> String {
        match self {
            Self::QuoteSubmitted { .. } | Self::QuoteAccepted { .. } => TOTALS_VERSION,
            _ => "1.0",
        }
        .to_owned()
    }
}

/// The version of the events that carry totals with a gross subtotal.
pub const TOTALS_VERSION: &str = "1.1";

impl crate::EventSchema for QuoteEvent {
    const UPCASTERS: &'static [crate::Upcaster] = &[
        crate::Upcaster {
            event_type: "QuoteSubmitted",
            from: "1.0",
            to: TOTALS_VERSION,
            rewrite: gross_subtotal,
        },
        crate::Upcaster {
            event_type: "QuoteAccepted",
            from: "1.0",
            to: TOTALS_VERSION,
            rewrite: gross_subtotal,
        },
    ];
}

/// 1.0 → 1.1: the totals' subtotal was net of the line discounts; it is the gross one now.
fn gross_subtotal(body: &mut serde_json::Value) -> Result<(), String> {
    let totals = &mut body["totals"];
    let amount = |totals: &serde_json::Value, field: &str| -> Result<Decimal, String> {
        totals[field]["amount"]
            .as_str()
            .and_then(|amount| amount.parse().ok())
            .ok_or_else(|| format!("totals.{field}.amount is no decimal"))
    };
    let gross = amount(totals, "subtotal")? + amount(totals, "line_discounts")?;
    totals["subtotal"]["amount"] = serde_json::Value::String(gross.to_string());
    Ok(())
}
