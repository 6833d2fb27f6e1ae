//! The approval's state, as far as its rules need it, and the `apply` that folds its events into
//! it. cqrs-es's `Aggregate` is implemented here; `handle` is the crate's one generic one.
use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{ApprovalCommand, ApprovalEvent, Level, Services, Subject};
use crate::{Command, DomainError, Money, Personal, PersonalData, Role};

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
    pub(super) request: Option<Request>,
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

impl Approval {
    pub fn status(&self) -> Option<ApprovalStatus> {
        self.request.as_ref().map(|r| r.status)
    }
}

impl Aggregate for Approval {
    const TYPE: &'static str = "Approval";
    type Command = Command<ApprovalCommand>;
    type Event = ApprovalEvent;
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

impl PersonalData for Approval {
    /// An approval's events name users by id only; comments and reasons are about the deal.
    fn personal_data(&self, _: &str, _: &ApprovalEvent, _: Option<Uuid>) -> Option<Personal> {
        None
    }
}
