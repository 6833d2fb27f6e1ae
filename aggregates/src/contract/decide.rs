//! The contract's rules: `decide` returns the events a command produces without changing
//! anything.
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use uuid::Uuid;

use super::drafting::{contract_exists, draft};
use super::facts::{Facts, Services};
use super::state::{ContractStatus, Details};
use super::{Contract, ContractCommand, ContractEvent, Party};
use crate::handle::Decide;
use crate::limits::{MONEY, NAME_MAX, REASON_MAX, TERMS_MAX};
use crate::{Actor, Command, DomainError, Email, Money, Role, RuleCode, TenantPolicy, Text};

/// Who drafts, amends, submits, signs and terminates contracts.
pub(super) const EDITORS: &[Role] = &[Role::TenantAdmin, Role::Manager, Role::Operator];

impl Decide for Contract {
    type Facts = Facts;

    async fn gather(
        &self,
        command: &Command<ContractCommand>,
        services: &Services,
    ) -> Result<Facts, DomainError> {
        Facts::gather(services.as_ref(), self, command).await
    }

    fn decide(
        &self,
        command: Command<ContractCommand>,
        facts: &Facts,
    ) -> Result<Vec<ContractEvent>, DomainError> {
        use ContractCommand as C;
        let Command {
            actor, at, body, ..
        } = command;
        let Some(contract) = &self.details else {
            return match body {
                C::DraftContract { .. } | C::DraftContractFromQuote { .. } => {
                    draft(&actor, body, facts)
                }
                _ => Err(DomainError::NotFound("contract")),
            };
        };
        let today = at.date_naive();
        match body {
            C::DraftContract { .. } => Err(contract_exists()),
            C::DraftContractFromQuote { quote_id, .. } => contract.redraft(&actor, quote_id),
            C::AmendContract { terms, value } => contract.amend(&actor, terms, value),
            C::SubmitContract {} => contract.submit(&actor, facts.policy()?),
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
            .map(|v| Money::parse_amount("value", v, &MONEY, &self.currency))
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
}
