use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::pricing::{LinePrice, QuoteTotals};
use crate::account::Tier;
use crate::{CurrencyCode, Role, Text};

/// What a line's quantity counts. Lines added before quotes had units (events of version 1.0)
/// count pieces.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
    strum::IntoStaticStr,
)]
pub enum Unit {
    #[default]
    Piece,
    Hour,
    Day,
    Month,
    Year,
    /// A user licence of a subscription.
    Seat,
    Kilogram,
    Metre,
    Litre,
}

impl Unit {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// One line of a quote as it stands. The volume-discount percentage is fixed when the line's
/// quantity is set, so replaying a quote never depends on today's tenant policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineItem {
    pub line_id: Uuid,
    pub sku: Text,
    pub description: Text,
    #[serde(with = "rust_decimal::serde::str")]
    pub quantity: Decimal,
    pub unit: Unit,
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
        unit: Unit,
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

    /// `QuoteSubmitted` 1.1 and `QuoteAccepted` 1.1: `totals.subtotal` is the gross (quantity ×
    /// unit price); in 1.0 it was net of the line discounts. `LineItemAdded` 1.1 and
    /// `QuoteAccepted` 1.2: lines have a unit. Older versions read through `UPCASTERS`.
    fn event_version(&self) -> String {
        match self {
            Self::QuoteSubmitted { .. } | Self::LineItemAdded { .. } => "1.1",
            Self::QuoteAccepted { .. } => "1.2",
            _ => "1.0",
        }
        .to_owned()
    }
}

impl crate::EventSchema for QuoteEvent {
    const UPCASTERS: &'static [crate::Upcaster] = &[
        crate::Upcaster {
            event_type: "QuoteSubmitted",
            from: "1.0",
            to: "1.1",
            rewrite: gross_subtotal,
        },
        crate::Upcaster {
            event_type: "QuoteAccepted",
            from: "1.0",
            to: "1.1",
            rewrite: gross_subtotal,
        },
        crate::Upcaster {
            event_type: "LineItemAdded",
            from: "1.0",
            to: "1.1",
            rewrite: counted_in_pieces,
        },
        crate::Upcaster {
            event_type: "QuoteAccepted",
            from: "1.1",
            to: "1.2",
            rewrite: lines_counted_in_pieces,
        },
    ];
}

/// `LineItemAdded` 1.0 → 1.1: a line added before units existed counts pieces.
fn counted_in_pieces(line: &mut serde_json::Value) -> Result<(), String> {
    let line = line.as_object_mut().ok_or("the line is no object")?;
    line.insert("unit".to_owned(), Unit::Piece.as_str().into());
    Ok(())
}

/// `QuoteAccepted` 1.1 → 1.2 (and a contract's lines copied from such a quote): every line
/// without a unit counts pieces.
pub(crate) fn lines_counted_in_pieces(body: &mut serde_json::Value) -> Result<(), String> {
    let lines = body
        .get_mut("lines")
        .and_then(serde_json::Value::as_array_mut)
        .ok_or("lines is no array")?;
    lines.iter_mut().try_for_each(counted_in_pieces)
}

/// 1.0 → 1.1: the totals' subtotal was net of the line discounts; it is the gross one now.
fn gross_subtotal(body: &mut serde_json::Value) -> Result<(), String> {
    let totals = body
        .get_mut("totals")
        .and_then(serde_json::Value::as_object_mut)
        .ok_or("totals is no object")?;
    let amount = |field: &str| -> Result<Decimal, String> {
        totals
            .get(field)
            .and_then(|money| money.get("amount"))
            .and_then(serde_json::Value::as_str)
            .and_then(|amount| amount.parse().ok())
            .ok_or_else(|| format!("totals.{field}.amount is no decimal"))
    };
    let gross = amount("subtotal")? + amount("line_discounts")?;
    let subtotal = totals
        .get_mut("subtotal")
        .and_then(serde_json::Value::as_object_mut)
        .ok_or("totals.subtotal is no object")?;
    subtotal.insert("amount".to_owned(), gross.to_string().into());
    Ok(())
}
