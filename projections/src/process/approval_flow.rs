//! The approval flow: a submission that needs approval requests one; the outcome goes back to
//! the quote or contract.
use aggregates::approval::{Approval, ApprovalCommand, ApprovalEvent, Subject, SubjectType};
use aggregates::contract::{Contract, ContractCommand, ContractEvent};
use aggregates::quote::{Quote, QuoteCommand, QuoteEvent};
use aggregates::RuleCode;
use async_trait::async_trait;
use cqrs_es::Aggregate;
use event_store::{history, StoredEvent};
use rust_decimal::Decimal;
use sqlx::PgConnection;
use uuid::Uuid;

use super::issue::{Issuer, Order, ProcessIds};
use super::Reactor;
use super::{aggregate_uuid, decode};
use crate::ProjectionError;

/// Refusals that mean the quote already took (or can no longer take) this outcome.
const QUOTE_SETTLED: &[RuleCode] = &[
    RuleCode::ApprovalAlreadySettled,
    RuleCode::QuoteNotPending,
    RuleCode::QuoteClosed,
];
const CONTRACT_SETTLED: &[RuleCode] = &[RuleCode::ContractNotPendingApproval];
/// Refusals that mean the request was already decided or cancelled: nothing left to cancel.
const APPROVAL_CLOSED: &[RuleCode] = &[RuleCode::ApprovalClosed];
/// The subjects' reason fields hold at most this many characters.
const REASON_MAX: usize = 1000;

/// Quote/contract submitted → `RequestApproval`; quote withdrawn → its open request cancelled;
/// approval granted / rejected / cancelled → the subject marked approved / rejected.
pub struct ApprovalFlow {
    issuer: Issuer,
}

impl ApprovalFlow {
    pub fn new(issuer: Issuer) -> Self {
        Self { issuer }
    }
}

#[async_trait]
impl Reactor for ApprovalFlow {
    const NAME: &'static str = "process.approvals";
    const SUBSCRIBES: &'static [(&'static str, &'static str)] = &[
        (Quote::TYPE, "QuoteSubmitted"),
        (Quote::TYPE, "QuoteWithdrawn"),
        (Contract::TYPE, "ContractSubmitted"),
        (Approval::TYPE, "ApprovalGranted"),
        (Approval::TYPE, "ApprovalRejected"),
        (Approval::TYPE, "ApprovalCancelled"),
    ];

    async fn react(
        &self,
        conn: &mut PgConnection,
        event: &StoredEvent,
    ) -> Result<(), ProjectionError> {
        match event.aggregate_type.as_str() {
            Quote::TYPE => self.on_quote(conn, event).await,
            Contract::TYPE => self.on_contract(event).await,
            _ => self.on_approval(event).await,
        }
    }
}

/// What an approval request asks for.
struct Request {
    subject_type: SubjectType,
    subject_version: u64,
    amount: Decimal,
    currency: String,
    requester_id: Uuid,
}

impl ApprovalFlow {
    async fn on_quote(
        &self,
        conn: &mut PgConnection,
        event: &StoredEvent,
    ) -> Result<(), ProjectionError> {
        match decode(event)? {
            QuoteEvent::QuoteSubmitted {
                requester,
                totals,
                needs_approval: true,
                ..
            } => {
                // The quote's stream version at submission identifies what was submitted.
                let request = Request {
                    subject_type: SubjectType::Quote,
                    subject_version: event.sequence as u64,
                    amount: totals.total.amount,
                    currency: totals.total.currency.as_str().to_owned(),
                    requester_id: requester,
                };
                self.request(event, request).await
            }
            QuoteEvent::QuoteWithdrawn { reason } => {
                self.cancel_open_request(conn, event, reason.as_str()).await
            }
            _ => Ok(()),
        }
    }

    /// Withdrawing a quote cancels the request of its last submission, if one was made and is
    /// still open (a decided or cancelled one refuses, which is done too).
    async fn cancel_open_request(
        &self,
        conn: &mut PgConnection,
        withdrawn: &StoredEvent,
        reason: &str,
    ) -> Result<(), ProjectionError> {
        let submission = history::last_before(
            &mut *conn,
            &withdrawn.aggregate_type,
            &withdrawn.aggregate_id,
            "QuoteSubmitted",
            withdrawn.sequence,
        )
        .await?;
        let Some(submission) = submission else {
            return Ok(());
        };
        // The request is at the submission's keyed id, or, requested before ids were keyed, at
        // its public one; none when the policy named no approvers.
        let candidates = [
            self.issuer.ids.of_event(&submission).to_string(),
            ProcessIds::causation_of(&submission).to_string(),
        ];
        let requested: Option<String> = sqlx::query_scalar(
            "select aggregate_id from events \
             where aggregate_type = $1 and aggregate_id = any($2) and sequence = 1",
        )
        .bind(Approval::TYPE)
        .bind(&candidates[..])
        .fetch_optional(&mut *conn)
        .await?;
        let Some(approval_id) = requested.and_then(|id| id.parse().ok()) else {
            return Ok(());
        };
        let reason = format!("the quote was withdrawn: {reason}");
        let body = ApprovalCommand::CancelApproval {
            reason: reason.chars().take(REASON_MAX).collect(),
        };
        let order = order(approval_id, "CancelApproval", body, APPROVAL_CLOSED);
        self.issuer.issue::<Approval>(withdrawn, order).await
    }

    async fn on_contract(&self, event: &StoredEvent) -> Result<(), ProjectionError> {
        let ContractEvent::ContractSubmitted {
            version,
            value,
            currency,
        } = decode(event)?
        else {
            return Ok(());
        };
        // The contract event names no requester: it is the user who submitted.
        let requester_id = event.meta_uuid("user_id").ok_or_else(|| {
            ProjectionError::inconsistent(event, "a contract submission without a user")
        })?;
        let request = Request {
            subject_type: SubjectType::Contract,
            subject_version: u64::from(version),
            amount: value,
            currency: currency.as_str().to_owned(),
            requester_id,
        };
        self.request(event, request).await
    }

    /// One approval per submission: its id is the submission event's id, so a
    /// redelivered submission finds the request already there (an idempotent no-op).
    async fn request(&self, event: &StoredEvent, request: Request) -> Result<(), ProjectionError> {
        let body = ApprovalCommand::RequestApproval {
            subject_type: request.subject_type,
            subject_id: aggregate_uuid(event)?,
            subject_version: request.subject_version,
            amount: request.amount,
            currency: request.currency,
            requester_id: request.requester_id,
        };
        let order = Order {
            aggregate_id: self.issuer.ids.of_event(event),
            name: "RequestApproval",
            body,
            settled: &[],
        };
        self.issuer.issue::<Approval>(event, order).await
    }

    async fn on_approval(&self, event: &StoredEvent) -> Result<(), ProjectionError> {
        match decode(event)? {
            ApprovalEvent::ApprovalGranted { subject } => self.settle(event, &subject, None).await,
            ApprovalEvent::ApprovalRejected {
                subject, reason, ..
            } => {
                let reason = reason.as_str().to_owned();
                self.settle(event, &subject, Some(reason)).await
            }
            // A cancelled request cannot approve the submission: the subject goes back to be
            // reworked, as after a rejection.
            ApprovalEvent::ApprovalCancelled { subject, reason } => {
                let reason = format!("Approval cancelled: {}", reason.as_str());
                self.settle(event, &subject, Some(reason)).await
            }
            _ => Ok(()),
        }
    }

    /// Tells the subject the outcome: approved (`rejection` is `None`) or rejected.
    async fn settle(
        &self,
        event: &StoredEvent,
        subject: &Subject,
        rejection: Option<String>,
    ) -> Result<(), ProjectionError> {
        let approval_id = aggregate_uuid(event)?;
        let reason = rejection.map(|r| r.chars().take(REASON_MAX).collect::<String>());
        match subject.subject_type {
            SubjectType::Quote => {
                let (name, body) = match reason {
                    None => (
                        "MarkQuoteApproved",
                        QuoteCommand::MarkQuoteApproved { approval_id },
                    ),
                    Some(reason) => (
                        "MarkQuoteRejected",
                        QuoteCommand::MarkQuoteRejected {
                            approval_id,
                            reason,
                        },
                    ),
                };
                let order = order(subject.id, name, body, QUOTE_SETTLED);
                self.issuer.issue::<Quote>(event, order).await
            }
            SubjectType::Contract => {
                let (name, body) = match reason {
                    None => (
                        "MarkContractApproved",
                        ContractCommand::MarkContractApproved { approval_id },
                    ),
                    Some(reason) => (
                        "MarkContractRejected",
                        ContractCommand::MarkContractRejected {
                            approval_id,
                            reason,
                        },
                    ),
                };
                let order = order(subject.id, name, body, CONTRACT_SETTLED);
                self.issuer.issue::<Contract>(event, order).await
            }
        }
    }
}

fn order<C>(
    aggregate_id: Uuid,
    name: &'static str,
    body: C,
    settled: &'static [RuleCode],
) -> Order<'static, C> {
    Order {
        aggregate_id,
        name,
        body,
        settled,
    }
}
