//! The contract's state, as far as its rules need it, and the `apply` that folds its events into
//! it. cqrs-es's `Aggregate` is implemented here; `handle` is the crate's one generic one.
use std::collections::BTreeSet;

use chrono::NaiveDate;
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{ContractCommand, ContractEvent, Party, Services};
use crate::{Command, CurrencyCode, DomainError, Personal, PersonalData, Subject, Text};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ContractStatus {
    Draft,
    Negotiation,
    PendingApproval,
    Approved,
    Active,
    Expired,
    Terminated,
    /// A draft abandoned before submission.
    Cancelled,
}

/// The state the rules need; the read model holds everything else.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Contract {
    pub(super) details: Option<Details>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Details {
    pub(super) status: ContractStatus,
    pub(super) account_id: Uuid,
    pub(super) quote_id: Option<Uuid>,
    pub(super) currency: CurrencyCode,
    #[serde(with = "rust_decimal::serde::str")]
    pub(super) value: Decimal,
    pub(super) terms: Text,
    pub(super) start_date: NaiveDate,
    pub(super) end_date: NaiveDate,
    pub(super) version: u32,
    pub(super) term: u32,
    pub(super) customer_signed: bool,
    pub(super) vendor_signed: bool,
    /// Approval requests whose outcome was applied: a repeated outcome changes nothing.
    pub(super) settled_approvals: BTreeSet<Uuid>,
}

impl Contract {
    pub fn status(&self) -> Option<ContractStatus> {
        self.details.as_ref().map(|d| d.status)
    }

    /// 1 when drafted, one more per amendment; 0 before drafting.
    pub fn version(&self) -> u32 {
        self.details.as_ref().map_or(0, |d| d.version)
    }
}

impl Details {
    fn apply(&mut self, event: ContractEvent) {
        use ContractEvent as E;
        match event {
            E::ContractDrafted { .. } | E::ContractDraftedFromQuote { .. } => {}
            E::ContractAmended {
                version,
                terms,
                value,
            } => {
                self.version = version;
                if let Some(terms) = terms {
                    self.terms = terms;
                }
                if let Some(value) = value {
                    self.value = value;
                }
                self.status = ContractStatus::Negotiation;
            }
            E::ContractSubmitted { .. } => self.status = ContractStatus::PendingApproval,
            E::ContractApproved { approval_id, .. } => {
                self.settled_approvals.insert(approval_id);
                self.status = ContractStatus::Approved;
            }
            E::ContractRejected { approval_id, .. } => {
                self.settled_approvals.insert(approval_id);
                self.status = ContractStatus::Negotiation;
            }
            E::ContractSigned { party, .. } => match party {
                Party::Customer => self.customer_signed = true,
                Party::Vendor => self.vendor_signed = true,
            },
            E::ContractActivated { .. } => self.status = ContractStatus::Active,
            E::ContractRenewed {
                term,
                new_end_date,
                new_value,
                ..
            } => {
                self.term = term;
                self.end_date = new_end_date;
                self.value = new_value;
                self.status = ContractStatus::Active;
            }
            E::ContractTerminated { .. } => self.status = ContractStatus::Terminated,
            E::ContractExpired { .. } => self.status = ContractStatus::Expired,
            E::ContractCancelled { .. } => self.status = ContractStatus::Cancelled,
        }
    }
}

impl Details {
    fn drafted(
        account_id: Uuid,
        quote_id: Option<Uuid>,
        value: Decimal,
        currency: CurrencyCode,
        start_date: NaiveDate,
        end_date: NaiveDate,
        terms: Text,
    ) -> Self {
        Self {
            status: ContractStatus::Draft,
            account_id,
            quote_id,
            currency,
            value,
            terms,
            start_date,
            end_date,
            version: 1,
            term: 1,
            customer_signed: false,
            vendor_signed: false,
            settled_approvals: BTreeSet::new(),
        }
    }
}

impl Aggregate for Contract {
    const TYPE: &'static str = "Contract";
    type Command = Command<ContractCommand>;
    type Event = ContractEvent;
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

    fn apply(&mut self, event: ContractEvent) {
        use ContractEvent as E;
        match (event, self.details.as_mut()) {
            (
                E::ContractDrafted {
                    account_id,
                    value,
                    currency,
                    start_date,
                    end_date,
                    terms,
                    ..
                },
                _,
            ) => {
                self.details = Some(Details::drafted(
                    account_id, None, value, currency, start_date, end_date, terms,
                ));
            }
            (
                E::ContractDraftedFromQuote {
                    quote_id,
                    account_id,
                    value,
                    currency,
                    start_date,
                    end_date,
                    terms,
                    ..
                },
                _,
            ) => {
                self.details = Some(Details::drafted(
                    account_id,
                    Some(quote_id),
                    value,
                    currency,
                    start_date,
                    end_date,
                    terms,
                ));
            }
            (event, Some(details)) => details.apply(event),
            (_, None) => {}
        }
    }
}

impl PersonalData for Contract {
    /// A signatory is filed under whom they sign for: the customer's under the account, the
    /// vendor's under the user who signed (the account when a process or an API key recorded
    /// it).
    fn personal_data(
        &self,
        _: &str,
        event: &ContractEvent,
        person: Option<Uuid>,
    ) -> Option<Personal> {
        use ContractEvent as E;
        // Every event is listed, so a new one has to be decided on here.
        let party = match event {
            E::ContractSigned { party, .. } => *party,
            E::ContractDrafted { .. }
            | E::ContractDraftedFromQuote { .. }
            | E::ContractAmended { .. }
            | E::ContractSubmitted { .. }
            | E::ContractApproved { .. }
            | E::ContractRejected { .. }
            | E::ContractActivated { .. }
            | E::ContractRenewed { .. }
            | E::ContractTerminated { .. }
            | E::ContractExpired { .. }
            | E::ContractCancelled { .. } => return None,
        };
        let account_id = self.details.as_ref()?.account_id;
        let subject = match (party, person) {
            (Party::Vendor, Some(user_id)) => Subject::User(user_id),
            _ => Subject::Account(account_id),
        };
        Some(Personal {
            subject,
            fields: &["signatory_name", "signatory_email"],
            sign_in: None,
        })
    }
}
