use std::collections::BTreeSet;

use chrono::{DateTime, Days, NaiveDate, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{
    ContractCommand, ContractEvent, ContractLine, ContractServices, Party, QuoteLine, Services,
};
use crate::account::AccountStatus;
use crate::limits::{NAME_MAX, REASON_MAX, TERMS_MAX, TITLE_MAX};
use crate::{
    Actor, Command, CurrencyCode, DomainError, Email, Money, Role, RuleCode, TenantPolicy, Text,
};

/// Who drafts, amends, submits, signs and terminates contracts.
const EDITORS: &[Role] = &[Role::TenantAdmin, Role::Manager, Role::Operator];
/// Renewal sets a new value without another approval, so it is kept to those who approve.
const RENEWERS: &[Role] = &[Role::TenantAdmin, Role::Manager];

/// An expired contract can still be renewed for this many days after its end date.
const RENEWAL_GRACE_DAYS: u64 = 30;

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
    details: Option<Details>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Details {
    status: ContractStatus,
    account_id: Uuid,
    quote_id: Option<Uuid>,
    currency: CurrencyCode,
    #[serde(with = "rust_decimal::serde::str")]
    value: Decimal,
    terms: Text,
    start_date: NaiveDate,
    end_date: NaiveDate,
    version: u32,
    term: u32,
    customer_signed: bool,
    vendor_signed: bool,
    /// Approval requests whose outcome was applied: a repeated outcome changes nothing.
    settled_approvals: BTreeSet<Uuid>,
}

/// The validated fields both ways of drafting share.
struct Draft {
    title: Text,
    value: Money,
    start_date: NaiveDate,
    end_date: NaiveDate,
    terms: Text,
}

impl Contract {
    pub fn status(&self) -> Option<ContractStatus> {
        self.details.as_ref().map(|d| d.status)
    }

    /// 1 when drafted, one more per amendment; 0 before drafting.
    pub fn version(&self) -> u32 {
        self.details.as_ref().map_or(0, |d| d.version)
    }

    /// Decides which events a command produces, without changing anything. The services are
    /// only read.
    pub async fn decide(
        &self,
        command: Command<ContractCommand>,
        services: &dyn ContractServices,
    ) -> Result<Vec<ContractEvent>, DomainError> {
        use ContractCommand as C;
        let Command {
            tenant_id,
            actor,
            at,
            body,
        } = command;
        let Some(contract) = &self.details else {
            return match body {
                C::DraftContract { .. } | C::DraftContractFromQuote { .. } => {
                    draft(tenant_id, &actor, body, services).await
                }
                _ => Err(DomainError::NotFound("contract")),
            };
        };
        let today = at.date_naive();
        match body {
            C::DraftContract { .. } => Err(contract_exists()),
            C::DraftContractFromQuote { quote_id, .. } => contract.redraft(&actor, quote_id),
            C::AmendContract { terms, value } => contract.amend(&actor, terms, value),
            C::SubmitContract {} => {
                let policy = services.policy(tenant_id).await?;
                contract.submit(&actor, &policy)
            }
            C::MarkContractApproved { approval_id } => contract.approved(&actor, approval_id),
            C::MarkContractRejected {
                approval_id,
                reason,
            } => contract.rejected(&actor, approval_id, &reason),
            C::SignContract {
                party,
                signatory_name,
                signatory_email,
            } => contract.sign(&actor, party, &signatory_name, &signatory_email, at),
            C::ActivateContract {} => contract.activate(&actor, today),
            C::RenewContract {
                new_end_date,
                new_value,
            } => contract.renew(&actor, today, new_end_date, new_value),
            C::TerminateContract {
                reason,
                effective_date,
            } => contract.terminate(&actor, today, &reason, effective_date),
            C::CancelContract { reason } => contract.cancel(&actor, &reason),
            C::ExpireContract {} => contract.expire(&actor, today),
        }
    }
}

/// Both ways of drafting: by a user from scratch, or by the acceptance process from a quote.
async fn draft(
    tenant_id: Uuid,
    actor: &Actor,
    body: ContractCommand,
    services: &dyn ContractServices,
) -> Result<Vec<ContractEvent>, DomainError> {
    use ContractCommand as C;
    let (account_id, event) = match body {
        C::DraftContract {
            account_id,
            title,
            value,
            currency,
            start_date,
            end_date,
            terms,
        } => {
            actor.require_any(EDITORS, "DraftContract")?;
            let d = Draft::parse(
                &title, value, "value", &currency, start_date, end_date, &terms,
            )?;
            services.policy(tenant_id).await?.allow(&d.value.currency)?;
            let event = ContractEvent::ContractDrafted {
                account_id,
                title: d.title,
                value: d.value.amount,
                currency: d.value.currency,
                start_date: d.start_date,
                end_date: d.end_date,
                terms: d.terms,
            };
            (account_id, event)
        }
        C::DraftContractFromQuote {
            quote_id,
            account_id,
            title,
            lines,
            total,
            currency,
            start_date,
            end_date,
            terms,
        } => {
            actor.require_system("DraftContractFromQuote")?;
            let d = Draft::parse(
                &title, total, "total", &currency, start_date, end_date, &terms,
            )?;
            let event = ContractEvent::ContractDraftedFromQuote {
                quote_id,
                account_id,
                title: d.title,
                lines: parse_lines(lines)?,
                value: d.value.amount,
                currency: d.value.currency,
                start_date: d.start_date,
                end_date: d.end_date,
                terms: d.terms,
            };
            (account_id, event)
        }
        other => unreachable!("decide sends only drafts here, not {}", other.name()),
    };
    ensure_account_takes_contracts(services, tenant_id, account_id).await?;
    Ok(vec![event])
}

impl Draft {
    fn parse(
        title: &str,
        value: Decimal,
        value_field: &str,
        currency: &str,
        start_date: NaiveDate,
        end_date: NaiveDate,
        terms: &str,
    ) -> Result<Self, DomainError> {
        let title = Text::parse("title", title, TITLE_MAX)?;
        let currency = CurrencyCode::parse("currency", currency)?;
        let value = Money::parse_amount(value_field, value, &currency)?;
        if end_date <= start_date {
            return Err(DomainError::invalid(
                "end_date",
                "must be after the start date",
            ));
        }
        let terms = Text::parse("terms", terms, TERMS_MAX)?;
        Ok(Self {
            title,
            value,
            start_date,
            end_date,
            terms,
        })
    }
}

/// The accepted quote's lines: at least one, each with a positive quantity, a price that is
/// not negative and a discount between 0 and 100 %.
fn parse_lines(lines: Vec<QuoteLine>) -> Result<Vec<ContractLine>, DomainError> {
    if lines.is_empty() {
        return Err(DomainError::invalid(
            "lines",
            "an accepted quote has at least one line",
        ));
    }
    lines
        .into_iter()
        .enumerate()
        .map(|(i, line)| {
            let field = |name: &str| format!("lines[{i}].{name}");
            if line.quantity <= Decimal::ZERO {
                return Err(DomainError::invalid(field("quantity"), "must be positive"));
            }
            if line.unit_price < Decimal::ZERO {
                return Err(DomainError::invalid(
                    field("unit_price"),
                    "must not be negative",
                ));
            }
            if !(Decimal::ZERO..=Decimal::ONE_HUNDRED).contains(&line.volume_discount_percent) {
                return Err(DomainError::invalid(
                    field("volume_discount_percent"),
                    "must be between 0 and 100",
                ));
            }
            Ok(ContractLine {
                sku: Text::parse(&field("sku"), &line.sku, TITLE_MAX)?,
                description: Text::parse(&field("description"), &line.description, REASON_MAX)?,
                quantity: line.quantity,
                unit_price: line.unit_price,
                volume_discount_percent: line.volume_discount_percent,
            })
        })
        .collect()
}

/// Contracts are drafted only for an account of the tenant that is neither suspended nor
/// closed.
async fn ensure_account_takes_contracts(
    services: &dyn ContractServices,
    tenant_id: Uuid,
    account_id: Uuid,
) -> Result<(), DomainError> {
    let facts = services
        .account(tenant_id, account_id)
        .await?
        .ok_or(DomainError::NotFound("account"))?;
    match facts.status {
        AccountStatus::Suspended => Err(DomainError::rule(
            RuleCode::AccountSuspended,
            "a suspended account gets no new contracts",
        )),
        AccountStatus::Closed => Err(DomainError::rule(
            RuleCode::AccountClosed,
            "a closed account gets no new contracts",
        )),
        AccountStatus::Prospect | AccountStatus::Active => Ok(()),
    }
}

fn contract_exists() -> DomainError {
    DomainError::rule(
        RuleCode::ContractExists,
        "a contract with this id is already drafted",
    )
}

impl Details {
    /// The acceptance process may deliver the same quote twice; its contract is drafted once.
    fn redraft(&self, actor: &Actor, quote_id: Uuid) -> Result<Vec<ContractEvent>, DomainError> {
        actor.require_system("DraftContractFromQuote")?;
        if self.quote_id == Some(quote_id) {
            return Ok(vec![]);
        }
        Err(contract_exists())
    }

    fn amend(
        &self,
        actor: &Actor,
        terms: Option<String>,
        value: Option<Decimal>,
    ) -> Result<Vec<ContractEvent>, DomainError> {
        actor.require_any(EDITORS, "AmendContract")?;
        let terms = terms
            .map(|t| Text::parse("terms", &t, TERMS_MAX))
            .transpose()?;
        let value = value
            .map(|v| Money::parse_amount("value", v, &self.currency))
            .transpose()?
            .map(|m| m.amount);
        if terms.is_none() && value.is_none() {
            return Err(DomainError::invalid(
                "body",
                "name at least one field to change",
            ));
        }
        if !self.negotiable() {
            return Err(DomainError::rule(
                RuleCode::ContractNotAmendable,
                "a contract is amended only before it is submitted for approval",
            ));
        }
        // An amendment that changes nothing makes no new version.
        let terms = terms.filter(|t| *t != self.terms);
        let value = value.filter(|v| *v != self.value);
        if terms.is_none() && value.is_none() {
            return Ok(vec![]);
        }
        Ok(vec![ContractEvent::ContractAmended {
            version: self.version + 1,
            terms,
            value,
        }])
    }

    /// Every contract goes through approval: one that the policy has no chain for would wait
    /// for ever, so it is refused here, as a quote is.
    fn submit(
        &self,
        actor: &Actor,
        policy: &TenantPolicy,
    ) -> Result<Vec<ContractEvent>, DomainError> {
        actor.require_any(EDITORS, "SubmitContract")?;
        if !self.negotiable() {
            return Err(DomainError::rule(
                RuleCode::ContractNotSubmittable,
                "only a draft or a contract in negotiation can be submitted",
            ));
        }
        let value = Money::new(self.value, self.currency.clone());
        if policy.approval_chain(&value).is_empty() {
            return Err(DomainError::rule(
                RuleCode::NoApprovalChain,
                format!(
                    "the tenant's policy has no approval chain for {} {}",
                    self.value,
                    self.currency.as_str()
                ),
            ));
        }
        Ok(vec![ContractEvent::ContractSubmitted {
            version: self.version,
            value: self.value,
            currency: self.currency.clone(),
        }])
    }

    fn approved(
        &self,
        actor: &Actor,
        approval_id: Uuid,
    ) -> Result<Vec<ContractEvent>, DomainError> {
        actor.require_system("MarkContractApproved")?;
        if self.settled_approvals.contains(&approval_id) {
            return Ok(vec![]);
        }
        self.ensure_pending_approval()?;
        Ok(vec![ContractEvent::ContractApproved {
            approval_id,
            version: self.version,
        }])
    }

    fn rejected(
        &self,
        actor: &Actor,
        approval_id: Uuid,
        reason: &str,
    ) -> Result<Vec<ContractEvent>, DomainError> {
        actor.require_system("MarkContractRejected")?;
        let reason = Text::parse("reason", reason, REASON_MAX)?;
        if self.settled_approvals.contains(&approval_id) {
            return Ok(vec![]);
        }
        self.ensure_pending_approval()?;
        Ok(vec![ContractEvent::ContractRejected {
            approval_id,
            version: self.version,
            reason,
        }])
    }

    fn sign(
        &self,
        actor: &Actor,
        party: Party,
        signatory_name: &str,
        signatory_email: &str,
        at: DateTime<Utc>,
    ) -> Result<Vec<ContractEvent>, DomainError> {
        self.require_signer(actor, party)?;
        let signatory_name = Text::parse("signatory_name", signatory_name, NAME_MAX)?;
        let signatory_email = Email::parse("signatory_email", signatory_email)?;
        if self.status != ContractStatus::Approved {
            return Err(DomainError::rule(
                RuleCode::ContractNotApproved,
                "a contract is signed once approved and before it is active",
            ));
        }
        let signed = match party {
            Party::Customer => self.customer_signed,
            Party::Vendor => self.vendor_signed,
        };
        if signed {
            return Err(DomainError::rule(
                RuleCode::AlreadySigned,
                format!("the {} has already signed", party.as_str()),
            ));
        }
        Ok(vec![ContractEvent::ContractSigned {
            party,
            signatory_name,
            signatory_email,
            signed_at: at,
        }])
    }

    fn activate(&self, actor: &Actor, today: NaiveDate) -> Result<Vec<ContractEvent>, DomainError> {
        actor.require_system("ActivateContract")?;
        match self.status {
            // A repeated timer finds it active already.
            ContractStatus::Active => return Ok(vec![]),
            ContractStatus::Approved => {}
            _ => {
                return Err(DomainError::rule(
                    RuleCode::ContractNotApproved,
                    "only an approved contract can be activated",
                ))
            }
        }
        if !(self.customer_signed && self.vendor_signed) {
            return Err(DomainError::rule(
                RuleCode::ContractNotSigned,
                "both the customer and the vendor must sign first",
            ));
        }
        if today < self.start_date {
            return Err(DomainError::rule(
                RuleCode::BeforeStartDate,
                format!("the contract starts on {}", self.start_date),
            ));
        }
        Ok(vec![ContractEvent::ContractActivated {
            account_id: self.account_id,
            activated_on: today,
        }])
    }

    fn renew(
        &self,
        actor: &Actor,
        today: NaiveDate,
        new_end_date: NaiveDate,
        new_value: Decimal,
    ) -> Result<Vec<ContractEvent>, DomainError> {
        actor.require_any(RENEWERS, "RenewContract")?;
        let new_value = Money::parse_amount("new_value", new_value, &self.currency)?;
        match self.status {
            ContractStatus::Active => {}
            ContractStatus::Expired => {
                let last_day = self
                    .end_date
                    .checked_add_days(Days::new(RENEWAL_GRACE_DAYS))
                    .unwrap_or(NaiveDate::MAX);
                if today > last_day {
                    return Err(DomainError::rule(
                        RuleCode::RenewalWindowClosed,
                        format!("an expired contract can be renewed until {last_day}"),
                    ));
                }
            }
            _ => {
                return Err(DomainError::rule(
                    RuleCode::ContractNotRenewable,
                    "only an active contract, or one expired within 30 days, can be renewed",
                ))
            }
        }
        if new_end_date <= self.end_date || new_end_date <= today {
            return Err(DomainError::invalid(
                "new_end_date",
                format!(
                    "must be after the current end date ({}) and in the future",
                    self.end_date
                ),
            ));
        }
        Ok(vec![ContractEvent::ContractRenewed {
            account_id: self.account_id,
            term: self.term + 1,
            previous_end_date: self.end_date,
            new_end_date,
            new_value: new_value.amount,
            currency: new_value.currency,
            reactivated: self.status == ContractStatus::Expired,
        }])
    }

    fn terminate(
        &self,
        actor: &Actor,
        today: NaiveDate,
        reason: &str,
        effective_date: NaiveDate,
    ) -> Result<Vec<ContractEvent>, DomainError> {
        actor.require_any(EDITORS, "TerminateContract")?;
        let reason = Text::parse("reason", reason, REASON_MAX)?;
        match self.status {
            ContractStatus::Active => {}
            ContractStatus::Expired | ContractStatus::Terminated | ContractStatus::Cancelled => {
                return Err(DomainError::rule(
                    RuleCode::ContractEnded,
                    "the contract has already ended",
                ))
            }
            ContractStatus::Draft | ContractStatus::Negotiation => {
                return Err(DomainError::rule(
                    RuleCode::ContractNotActive,
                    "only an active contract terminates; cancel a draft with CancelContract",
                ))
            }
            ContractStatus::PendingApproval | ContractStatus::Approved => {
                return Err(DomainError::rule(
                    RuleCode::ContractNotActive,
                    "only an active contract terminates",
                ))
            }
        }
        if effective_date < today || effective_date > self.end_date {
            return Err(DomainError::invalid(
                "effective_date",
                format!(
                    "must be between today and the end date ({}), both included",
                    self.end_date
                ),
            ));
        }
        Ok(vec![ContractEvent::ContractTerminated {
            account_id: self.account_id,
            reason,
            effective_date,
        }])
    }

    fn cancel(&self, actor: &Actor, reason: &str) -> Result<Vec<ContractEvent>, DomainError> {
        actor.require_any(EDITORS, "CancelContract")?;
        let reason = Text::parse("reason", reason, REASON_MAX)?;
        // Approved but never activated (the customer did not sign) is abandoned too; once
        // submitted and waiting for approval, or active, it is not.
        if !(self.negotiable() || self.status == ContractStatus::Approved) {
            return Err(DomainError::rule(
                RuleCode::ContractNotDraft,
                format!(
                    "only a contract that is not active yet (Draft, Negotiation or Approved) \
                     can be cancelled; it is {:?}",
                    self.status
                ),
            ));
        }
        Ok(vec![ContractEvent::ContractCancelled { reason }])
    }

    fn expire(&self, actor: &Actor, today: NaiveDate) -> Result<Vec<ContractEvent>, DomainError> {
        actor.require_system("ExpireContract")?;
        match self.status {
            // A repeated or late timer finds the contract ended already.
            ContractStatus::Expired | ContractStatus::Terminated => Ok(vec![]),
            ContractStatus::Active if today < self.end_date => Err(DomainError::rule(
                RuleCode::BeforeEndDate,
                format!("the contract runs until {}", self.end_date),
            )),
            ContractStatus::Active => Ok(vec![ContractEvent::ContractExpired {
                account_id: self.account_id,
                end_date: self.end_date,
            }]),
            _ => Err(DomainError::rule(
                RuleCode::ContractNotActive,
                "only an active contract expires",
            )),
        }
    }

    fn negotiable(&self) -> bool {
        matches!(
            self.status,
            ContractStatus::Draft | ContractStatus::Negotiation
        )
    }

    fn ensure_pending_approval(&self) -> Result<(), DomainError> {
        if self.status != ContractStatus::PendingApproval {
            return Err(DomainError::rule(
                RuleCode::ContractNotPendingApproval,
                "the contract is not waiting for an approval",
            ));
        }
        Ok(())
    }

    /// The tenant's Operators, Managers and TenantAdmins sign for either party (the customer's
    /// on its behalf); a Partner signs only as the customer, and only for its own account.
    fn require_signer(&self, actor: &Actor, party: Party) -> Result<(), DomainError> {
        if actor.is_system() || actor.has_any(EDITORS) {
            return Ok(());
        }
        if let Actor::User {
            roles, account_id, ..
        } = actor
        {
            if party == Party::Customer
                && roles.contains(&Role::Partner)
                && *account_id == Some(self.account_id)
            {
                return Ok(());
            }
        }
        Err(DomainError::Forbidden(format!(
            "signing as the {} needs one of the roles {EDITORS:?}, or a Partner of the \
             contract's account signing as the Customer",
            party.as_str()
        )))
    }

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
        let events = self.decide(command, services.as_ref()).await?;
        for event in events {
            sink.write(event, self).await;
        }
        Ok(())
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
