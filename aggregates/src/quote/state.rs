//! The quote's state, as far as its rules need it, and the `apply` that folds its events into
//! it. cqrs-es's `Aggregate` is implemented here; `handle` is the crate's one generic one.
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::pricing::{quote_totals, QuoteTotals};
use super::{LineItem, QuoteCommand, QuoteEvent, Services};
use crate::account::Tier;
use crate::{Command, CurrencyCode, DomainError, Personal, PersonalData, Text};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum QuoteStatus {
    Draft,
    PendingApproval,
    Approved,
    Rejected,
    Sent,
    Accepted,
    Declined,
    Expired,
    Withdrawn,
}

impl QuoteStatus {
    /// A final quote never changes again.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::Accepted | Self::Declined | Self::Expired | Self::Withdrawn
        )
    }
}

/// How an approval request ended for this quote, remembered so that a redelivered outcome
/// from the approval process is recognised and changes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) enum Settled {
    Approved,
    Rejected,
}

/// The state the rules need once the quote is drafted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct QuoteState {
    pub(super) status: QuoteStatus,
    pub(super) account_id: Uuid,
    pub(super) title: Text,
    pub(super) currency: CurrencyCode,
    pub(super) tier: Tier,
    pub(super) valid_until: DateTime<Utc>,
    /// In the order they were added, which is the order the document shows.
    pub(super) lines: Vec<LineItem>,
    pub(super) discount_percent: Decimal,
    pub(super) submissions: u32,
    pub(super) settled: BTreeMap<Uuid, Settled>,
}

impl QuoteState {
    pub(super) fn totals(&self) -> QuoteTotals {
        quote_totals(
            self.lines.iter().map(LineItem::price),
            self.discount_percent,
            &self.currency,
        )
    }
}

/// A quote: `None` until drafted.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Quote {
    pub(super) state: Option<QuoteState>,
}

impl Quote {
    pub fn status(&self) -> Option<QuoteStatus> {
        self.state.as_ref().map(|q| q.status)
    }

    pub fn account_id(&self) -> Option<Uuid> {
        self.state.as_ref().map(|q| q.account_id)
    }

    pub fn lines(&self) -> &[LineItem] {
        self.state.as_ref().map_or(&[], |q| q.lines.as_slice())
    }

    pub fn totals(&self) -> Option<QuoteTotals> {
        self.state.as_ref().map(QuoteState::totals)
    }
}

impl Aggregate for Quote {
    const TYPE: &'static str = "Quote";
    type Command = Command<QuoteCommand>;
    type Event = QuoteEvent;
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

    fn apply(&mut self, event: QuoteEvent) {
        if let QuoteEvent::QuoteDrafted {
            account_id,
            title,
            currency,
            tier,
            valid_until,
        } = event
        {
            self.state = Some(QuoteState {
                status: QuoteStatus::Draft,
                account_id,
                title,
                currency,
                tier,
                valid_until,
                lines: Vec::new(),
                discount_percent: Decimal::ZERO,
                submissions: 0,
                settled: BTreeMap::new(),
            });
        } else if let Some(quote) = self.state.as_mut() {
            quote.apply(event);
        }
    }
}

impl QuoteState {
    fn apply(&mut self, event: QuoteEvent) {
        use QuoteEvent as E;
        use QuoteStatus as S;
        match event {
            E::QuoteDrafted { .. } => {}
            E::LineItemAdded {
                line_id,
                sku,
                description,
                quantity,
                unit,
                unit_price,
                volume_discount_percent,
            } => self.lines.push(LineItem {
                line_id,
                sku,
                description,
                quantity,
                unit,
                unit_price,
                volume_discount_percent,
            }),
            E::LineItemChanged {
                line_id,
                quantity,
                unit_price,
                description,
                volume_discount_percent,
            } => {
                if let Some(line) = self.lines.iter_mut().find(|l| l.line_id == line_id) {
                    line.quantity = quantity.unwrap_or(line.quantity);
                    line.unit_price = unit_price.unwrap_or(line.unit_price);
                    line.description = description.unwrap_or_else(|| line.description.clone());
                    line.volume_discount_percent = volume_discount_percent;
                }
            }
            E::LineItemRemoved { line_id } => self.lines.retain(|l| l.line_id != line_id),
            E::QuoteDiscountSet { percent, .. } => self.discount_percent = percent,
            E::QuoteSubmitted { submission, .. } => {
                self.status = S::PendingApproval;
                self.submissions = submission;
            }
            E::QuoteApproved { approval_id } => {
                self.status = S::Approved;
                if let Some(id) = approval_id {
                    self.settled.insert(id, Settled::Approved);
                }
            }
            E::QuoteRejected { approval_id, .. } => {
                self.status = S::Rejected;
                self.settled.insert(approval_id, Settled::Rejected);
            }
            E::QuoteRevised {} => self.status = S::Draft,
            E::QuoteSent {} => self.status = S::Sent,
            E::QuoteAccepted { .. } => self.status = S::Accepted,
            E::QuoteDeclined { .. } => self.status = S::Declined,
            E::QuoteWithdrawn { .. } => self.status = S::Withdrawn,
            E::QuoteExpired {} => self.status = S::Expired,
        }
    }
}

impl PersonalData for Quote {
    /// A quote's events name accounts and users by id only, and its texts are about the deal.
    fn personal_data(&self, _: &str, _: &QuoteEvent, _: Option<Uuid>) -> Option<Personal> {
        None
    }
}
