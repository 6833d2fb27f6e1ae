//! The quote's rules: `decide` returns the events a command produces without changing anything.
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::facts::{Facts, Services};
use super::line_items::NewLine;
use super::state::{QuoteState, Settled};
use super::{Quote, QuoteCommand, QuoteEvent, QuoteStatus};
use crate::account::{AccountFacts, AccountStatus};
use crate::handle::Decide;
use crate::limits::{REASON_MAX, TITLE_MAX};
use crate::{Actor, Command, DomainError, Role, RuleCode, Text};

/// The tenant's staff who prepare, submit, send and withdraw quotes.
const EDITORS: &[Role] = &[Role::TenantAdmin, Role::Manager, Role::Operator];

/// Who decides, when, and with which outside facts: what every per-command rule may read.
pub(super) struct Ctx<'a> {
    pub(super) actor: &'a Actor,
    pub(super) at: DateTime<Utc>,
    pub(super) facts: &'a Facts,
}

impl Decide for Quote {
    type Facts = Facts;

    async fn gather(
        &self,
        command: &Command<QuoteCommand>,
        services: &Services,
    ) -> Result<Facts, DomainError> {
        Facts::gather(services.as_ref(), self, command).await
    }

    fn decide(
        &self,
        command: Command<QuoteCommand>,
        facts: &Facts,
    ) -> Result<Vec<QuoteEvent>, DomainError> {
        let Command {
            actor, at, body, ..
        } = command;
        let cx = Ctx {
            actor: &actor,
            at,
            facts,
        };
        match (&self.state, body) {
            (
                None,
                QuoteCommand::DraftQuote {
                    account_id,
                    title,
                    valid_until,
                },
            ) => draft(&cx, account_id, &title, valid_until),
            (None, _) => Err(DomainError::NotFound("quote")),
            (Some(quote), body) => quote.decide(&cx, body),
        }
    }
}

fn draft(
    cx: &Ctx,
    account_id: Uuid,
    title: &str,
    valid_until: DateTime<Utc>,
) -> Result<Vec<QuoteEvent>, DomainError> {
    cx.actor.require_any(EDITORS, "DraftQuote")?;
    let title = Text::parse("title", title, TITLE_MAX)?;
    // A rule of time, not of form: the same request was valid a moment earlier (422).
    if valid_until <= cx.at {
        return Err(DomainError::rule(
            RuleCode::ValidUntilPassed,
            "valid_until must be in the future",
        ));
    }
    let AccountFacts {
        status,
        currency,
        tier,
    } = cx
        .facts
        .account
        .clone()
        .ok_or(DomainError::NotFound("account"))?;
    match status {
        AccountStatus::Suspended => Err(DomainError::rule(
            RuleCode::AccountSuspended,
            "no new quotes for a suspended account",
        )),
        AccountStatus::Closed => Err(DomainError::rule(
            RuleCode::AccountClosed,
            "the account is closed",
        )),
        AccountStatus::Prospect | AccountStatus::Active => Ok(vec![QuoteEvent::QuoteDrafted {
            account_id,
            title,
            currency,
            tier,
            valid_until,
        }]),
    }
}

impl QuoteState {
    fn decide(&self, cx: &Ctx, body: QuoteCommand) -> Result<Vec<QuoteEvent>, DomainError> {
        use QuoteCommand as C;
        if self.status.is_final() && !self.is_redelivery(&body) {
            return Err(DomainError::rule(
                RuleCode::QuoteClosed,
                format!("the quote is {:?} and can no longer change", self.status),
            ));
        }
        match body {
            C::DraftQuote { .. } => Err(DomainError::rule(
                RuleCode::QuoteExists,
                "a quote with this id is already drafted",
            )),
            C::AddLineItem {
                line_id,
                sku,
                description,
                quantity,
                unit,
                unit_price,
            } => {
                let line = NewLine {
                    line_id,
                    sku: &sku,
                    description: &description,
                    quantity,
                    unit,
                    unit_price,
                };
                self.add_line(cx, line)
            }
            C::ChangeLineItem {
                line_id,
                quantity,
                unit_price,
                description,
            } => self.change_line(cx, line_id, quantity, unit_price, description),
            C::RemoveLineItem { line_id } => self.remove_line(cx, line_id),
            C::SetQuoteDiscount { percent, reason } => self.set_discount(cx, percent, &reason),
            C::SubmitQuote {} => self.submit(cx),
            C::MarkQuoteApproved { approval_id } => self.mark_approved(cx, approval_id),
            C::MarkQuoteRejected {
                approval_id,
                reason,
            } => self.mark_rejected(cx, approval_id, &reason),
            C::ReviseQuote {} => self.revise(cx),
            C::SendQuote {} => self.send(cx),
            C::AcceptQuote {} => self.accept(cx),
            C::DeclineQuote { reason } => self.decline(cx, &reason),
            C::WithdrawQuote { reason } => self.withdraw(cx, &reason),
            C::ExpireQuote {} => self.expire(cx),
        }
    }

    /// Processes and timers deliver at least once: a repeated outcome must change nothing,
    /// even on a quote that has since become final.
    fn is_redelivery(&self, body: &QuoteCommand) -> bool {
        match body {
            QuoteCommand::ExpireQuote {} => self.status == QuoteStatus::Expired,
            QuoteCommand::MarkQuoteApproved { approval_id } => {
                self.settled.get(approval_id) == Some(&Settled::Approved)
            }
            QuoteCommand::MarkQuoteRejected { approval_id, .. } => {
                self.settled.get(approval_id) == Some(&Settled::Rejected)
            }
            _ => false,
        }
    }

    fn submit(&self, cx: &Ctx) -> Result<Vec<QuoteEvent>, DomainError> {
        // The submitter is the approval's requester, who may not approve it: a process has
        // no such identity, so only a user submits.
        let Actor::User { user_id, .. } = cx.actor else {
            return Err(DomainError::Forbidden(
                "SubmitQuote is done by a user, who becomes the requester".to_owned(),
            ));
        };
        self.require_editable(cx.actor, "SubmitQuote")?;
        if self.lines.is_empty() {
            return Err(DomainError::rule(
                RuleCode::QuoteHasNoLines,
                "a quote needs at least one line to be submitted",
            ));
        }
        self.require_valid_at(cx.at)?;
        let policy = cx.facts.policy()?;
        let totals = self.totals();
        let needs_approval = policy.needs_approval(&totals.total, self.discount_percent);
        let approval_chain = if needs_approval {
            policy.approval_chain(&totals.total)
        } else {
            Vec::new()
        };
        if needs_approval && approval_chain.is_empty() {
            return Err(DomainError::rule(
                RuleCode::NoApprovalChain,
                "the tenant's policy has no approval chain for this amount",
            ));
        }
        let submitted = QuoteEvent::QuoteSubmitted {
            submission: self.submissions + 1,
            requester: *user_id,
            totals,
            discount_percent: self.discount_percent,
            needs_approval,
            approval_chain,
        };
        if needs_approval {
            Ok(vec![submitted])
        } else {
            Ok(vec![
                submitted,
                QuoteEvent::QuoteApproved { approval_id: None },
            ])
        }
    }

    fn mark_approved(&self, cx: &Ctx, approval_id: Uuid) -> Result<Vec<QuoteEvent>, DomainError> {
        cx.actor.require_system("MarkQuoteApproved")?;
        match self.settled.get(&approval_id) {
            Some(Settled::Approved) => return Ok(vec![]),
            Some(Settled::Rejected) => return Err(already_settled("rejected")),
            None => {}
        }
        self.require_pending()?;
        Ok(vec![QuoteEvent::QuoteApproved {
            approval_id: Some(approval_id),
        }])
    }

    fn mark_rejected(
        &self,
        cx: &Ctx,
        approval_id: Uuid,
        reason: &str,
    ) -> Result<Vec<QuoteEvent>, DomainError> {
        cx.actor.require_system("MarkQuoteRejected")?;
        let reason = parse_reason(reason)?;
        match self.settled.get(&approval_id) {
            Some(Settled::Rejected) => return Ok(vec![]),
            Some(Settled::Approved) => return Err(already_settled("approved")),
            None => {}
        }
        self.require_pending()?;
        Ok(vec![QuoteEvent::QuoteRejected {
            approval_id,
            reason,
        }])
    }

    fn revise(&self, cx: &Ctx) -> Result<Vec<QuoteEvent>, DomainError> {
        cx.actor.require_any(EDITORS, "ReviseQuote")?;
        self.require_status(QuoteStatus::Rejected, RuleCode::QuoteNotRejected)?;
        Ok(vec![QuoteEvent::QuoteRevised {}])
    }

    fn send(&self, cx: &Ctx) -> Result<Vec<QuoteEvent>, DomainError> {
        cx.actor.require_any(EDITORS, "SendQuote")?;
        self.require_status(QuoteStatus::Approved, RuleCode::QuoteNotApproved)?;
        self.require_valid_at(cx.at)?;
        Ok(vec![QuoteEvent::QuoteSent {}])
    }

    fn accept(&self, cx: &Ctx) -> Result<Vec<QuoteEvent>, DomainError> {
        self.require_answerer(cx.actor, "AcceptQuote")?;
        self.require_status(QuoteStatus::Sent, RuleCode::QuoteNotSent)?;
        self.require_valid_at(cx.at)?;
        Ok(vec![QuoteEvent::QuoteAccepted {
            account_id: self.account_id,
            title: self.title.clone(),
            lines: self.lines.clone(),
            totals: self.totals(),
        }])
    }

    fn decline(&self, cx: &Ctx, reason: &str) -> Result<Vec<QuoteEvent>, DomainError> {
        self.require_answerer(cx.actor, "DeclineQuote")?;
        let reason = parse_reason(reason)?;
        self.require_status(QuoteStatus::Sent, RuleCode::QuoteNotSent)?;
        self.require_valid_at(cx.at)?;
        Ok(vec![QuoteEvent::QuoteDeclined { reason }])
    }

    /// Any quote not yet final may be withdrawn; `decide` has already refused final ones.
    fn withdraw(&self, cx: &Ctx, reason: &str) -> Result<Vec<QuoteEvent>, DomainError> {
        cx.actor.require_any(EDITORS, "WithdrawQuote")?;
        let reason = parse_reason(reason)?;
        Ok(vec![QuoteEvent::QuoteWithdrawn { reason }])
    }

    fn expire(&self, cx: &Ctx) -> Result<Vec<QuoteEvent>, DomainError> {
        cx.actor.require_system("ExpireQuote")?;
        if self.status == QuoteStatus::Expired {
            return Ok(vec![]);
        }
        if cx.at <= self.valid_until {
            return Err(DomainError::rule(
                RuleCode::QuoteStillValid,
                format!("the quote is valid until {}", self.valid_until),
            ));
        }
        Ok(vec![QuoteEvent::QuoteExpired {}])
    }

    /// Lines and discount can change only while the quote is a draft: from submission on,
    /// they are what was (or is being) approved.
    pub(super) fn require_editable(&self, actor: &Actor, action: &str) -> Result<(), DomainError> {
        actor.require_any(EDITORS, action)?;
        self.require_status(QuoteStatus::Draft, RuleCode::QuoteNotDraft)
    }

    fn require_status(&self, wanted: QuoteStatus, code: RuleCode) -> Result<(), DomainError> {
        if self.status == wanted {
            return Ok(());
        }
        Err(DomainError::rule(
            code,
            format!("the quote is {:?}, not {wanted:?}", self.status),
        ))
    }

    fn require_pending(&self) -> Result<(), DomainError> {
        self.require_status(QuoteStatus::PendingApproval, RuleCode::QuoteNotPending)
    }

    fn require_valid_at(&self, at: DateTime<Utc>) -> Result<(), DomainError> {
        if at <= self.valid_until {
            return Ok(());
        }
        Err(DomainError::rule(
            RuleCode::QuoteValidityPassed,
            format!("the quote was valid until {}", self.valid_until),
        ))
    }

    /// The account answers a quote through its own Partner users; staff may record the
    /// answer on its behalf. A Partner of another account is refused.
    fn require_answerer(&self, actor: &Actor, action: &str) -> Result<(), DomainError> {
        if actor.is_system() || actor.has_any(EDITORS) {
            return Ok(());
        }
        match actor {
            Actor::User {
                roles, account_id, ..
            } if roles.contains(&Role::Partner) && *account_id == Some(self.account_id) => Ok(()),
            _ => Err(DomainError::Forbidden(format!(
                "{action} needs a Partner of the quote's account or one of the roles {EDITORS:?}"
            ))),
        }
    }
}

fn already_settled(outcome: &str) -> DomainError {
    DomainError::rule(
        RuleCode::ApprovalAlreadySettled,
        format!("this approval already {outcome} the quote"),
    )
}

pub(super) fn parse_reason(reason: &str) -> Result<Text, DomainError> {
    Text::parse("reason", reason, REASON_MAX)
}
