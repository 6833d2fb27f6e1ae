use std::sync::Arc;

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{ApprovalCommand, ApprovalEvent, ApprovalServices, Level, Subject, SubjectType};
use crate::{Actor, Command, CurrencyCode, DomainError, Money, Role};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ApprovalStatus {
    Pending,
    Approved,
    Rejected,
    Cancelled,
}

/// The state the rules need; the read model holds everything else.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Approval {
    request: Option<Request>,
}

/// An approval that has been requested.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Request {
    pub(super) status: ApprovalStatus,
    pub(super) subject: Subject,
    pub(super) amount: Money,
    pub(super) requester_id: Uuid,
    pub(super) levels: Vec<LevelState>,
    /// Index of the level waiting for a decision; `levels.len()` once all are approved.
    pub(super) current: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct LevelState {
    pub(super) role: Role,
    pub(super) due_at: DateTime<Utc>,
    /// Set by delegation: then only this user may decide the level.
    pub(super) delegate: Option<Uuid>,
    pub(super) approved_by: Option<Uuid>,
}

/// Everything about a command except its body: who, where and when.
pub(super) struct Ctx {
    pub(super) tenant_id: Uuid,
    pub(super) actor: Actor,
    pub(super) at: DateTime<Utc>,
}

/// A `RequestApproval` whose fields have been validated.
#[derive(Debug, PartialEq)]
pub(super) struct Asked {
    pub(super) subject: Subject,
    pub(super) amount: Money,
    pub(super) requester_id: Uuid,
}

impl Approval {
    pub fn status(&self) -> Option<ApprovalStatus> {
        self.request.as_ref().map(|r| r.status)
    }

    /// Decides which events a command produces, without changing anything. Facts from outside
    /// the stream (users, tenant policy) come from `services`.
    pub async fn decide(
        &self,
        command: Command<ApprovalCommand>,
        services: &dyn ApprovalServices,
    ) -> Result<Vec<ApprovalEvent>, DomainError> {
        let Command {
            tenant_id,
            actor,
            at,
            body,
        } = command;
        let ctx = Ctx {
            tenant_id,
            actor,
            at,
        };
        let Some(request) = &self.request else {
            return match body {
                ApprovalCommand::RequestApproval {
                    subject_type,
                    subject_id,
                    subject_version,
                    amount,
                    currency,
                    requester_id,
                } => {
                    ctx.actor.require_system("RequestApproval")?;
                    let subject = (subject_type, subject_id, subject_version);
                    let asked = Asked::parse(subject, amount, &currency, requester_id)?;
                    asked.open(&ctx, services).await
                }
                _ => Err(DomainError::NotFound("approval")),
            };
        };
        request.decide(&ctx, body, services).await
    }
}

impl Asked {
    pub(super) fn parse(
        (subject_type, id, version): (SubjectType, Uuid, u64),
        amount: Decimal,
        currency: &str,
        requester_id: Uuid,
    ) -> Result<Self, DomainError> {
        let subject = Subject {
            subject_type,
            id,
            version,
        };
        let currency = CurrencyCode::parse("currency", currency)?;
        let amount = Money::parse_amount("amount", amount, &currency)?;
        for (field, id) in [("subject_id", subject.id), ("requester_id", requester_id)] {
            if id.is_nil() {
                return Err(DomainError::invalid(field, "must not be the nil UUID"));
            }
        }
        Ok(Self {
            subject,
            amount,
            requester_id,
        })
    }
}

impl Aggregate for Approval {
    const TYPE: &'static str = "Approval";
    type Command = Command<ApprovalCommand>;
    type Event = ApprovalEvent;
    type Error = DomainError;
    type Services = Arc<dyn ApprovalServices>;

    async fn handle(
        &mut self,
        command: Self::Command,
        services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), DomainError> {
        for event in self.decide(command, services.as_ref()).await? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: ApprovalEvent) {
        if let ApprovalEvent::ApprovalRequested {
            subject,
            amount,
            requester_id,
            levels,
        } = event
        {
            self.request = Some(Request::opened(subject, amount, requester_id, levels));
        } else if let Some(request) = self.request.as_mut() {
            request.apply(event);
        }
    }
}

impl Request {
    fn opened(subject: Subject, amount: Money, requester_id: Uuid, levels: Vec<Level>) -> Self {
        let levels = levels
            .into_iter()
            .map(|Level { role, due_at }| LevelState {
                role,
                due_at,
                delegate: None,
                approved_by: None,
            })
            .collect();
        Self {
            status: ApprovalStatus::Pending,
            subject,
            amount,
            requester_id,
            levels,
            current: 0,
        }
    }

    fn apply(&mut self, event: ApprovalEvent) {
        use ApprovalEvent as E;
        match event {
            E::ApprovalRequested { .. } => {}
            E::LevelApproved {
                level,
                approver_id,
                next_due_at,
                ..
            } => {
                self.level_mut(level).approved_by = Some(approver_id);
                self.current = index(level) + 1;
                if let (Some(due_at), Some(next)) = (next_due_at, self.levels.get_mut(self.current))
                {
                    next.due_at = due_at;
                }
            }
            E::ApprovalGranted { .. } => self.status = ApprovalStatus::Approved,
            E::ApprovalRejected { .. } => self.status = ApprovalStatus::Rejected,
            E::ApprovalCancelled { .. } => self.status = ApprovalStatus::Cancelled,
            E::LevelDelegated { level, to, .. } => self.level_mut(level).delegate = Some(to),
            E::LevelEscalated {
                level,
                to_role,
                new_due_at,
                ..
            } => {
                let level = self.level_mut(level);
                level.role = to_role;
                level.due_at = new_due_at;
                level.delegate = None;
            }
        }
    }

    fn level_mut(&mut self, level: u32) -> &mut LevelState {
        self.levels
            .get_mut(index(level))
            .expect("events name levels of their own request")
    }
}

/// The number events use for the level at `index`.
pub(super) fn number(index: usize) -> u32 {
    u32::try_from(index + 1).expect("a chain has few levels")
}

fn index(number: u32) -> usize {
    usize::try_from(number).expect("u32 fits usize") - 1
}
