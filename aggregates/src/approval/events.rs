use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{Money, Role, Text};

/// What kind of aggregate an approval decides on.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
    strum::IntoStaticStr,
)]
pub enum SubjectType {
    Quote,
    Contract,
}

impl SubjectType {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// The submission an approval decides on. Terminal events repeat it so the process manager can
/// route the outcome without reading this stream back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subject {
    pub subject_type: SubjectType,
    pub id: Uuid,
    pub version: u64,
}

/// One level of the chain as requested: the role that approves it and when it is due.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Level {
    pub role: Role,
    pub due_at: DateTime<Utc>,
}

/// Levels are numbered from 1, as people count them, in every event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ApprovalEvent {
    /// Every level's `due_at` is the request time plus the SLA; a later level's clock restarts
    /// when it becomes current (`LevelApproved::next_due_at`).
    ApprovalRequested {
        subject: Subject,
        amount: Money,
        requester_id: Uuid,
        levels: Vec<Level>,
    },
    /// `next_due_at` is the due time of the level that is current now, `None` after the last.
    LevelApproved {
        level: u32,
        approver_id: Uuid,
        comment: Option<Text>,
        next_due_at: Option<DateTime<Utc>>,
    },
    /// Follows the last level's `LevelApproved`.
    ApprovalGranted {
        subject: Subject,
    },
    ApprovalRejected {
        subject: Subject,
        level: u32,
        approver_id: Uuid,
        reason: Text,
    },
    /// From now on only `to` may approve or reject the level (until it escalates).
    LevelDelegated {
        level: u32,
        from: Uuid,
        to: Uuid,
    },
    /// The SLA breach: the level was due at `overdue_since`. Escalation drops any delegation.
    LevelEscalated {
        level: u32,
        from_role: Role,
        to_role: Role,
        overdue_since: DateTime<Utc>,
        new_due_at: DateTime<Utc>,
    },
    ApprovalCancelled {
        subject: Subject,
        reason: Text,
    },
}

impl DomainEvent for ApprovalEvent {
    fn event_type(&self) -> String {
        let name = match self {
            Self::ApprovalRequested { .. } => "ApprovalRequested",
            Self::LevelApproved { .. } => "LevelApproved",
            Self::ApprovalGranted { .. } => "ApprovalGranted",
            Self::ApprovalRejected { .. } => "ApprovalRejected",
            Self::LevelDelegated { .. } => "LevelDelegated",
            Self::LevelEscalated { .. } => "LevelEscalated",
            Self::ApprovalCancelled { .. } => "ApprovalCancelled",
        };
        name.to_owned()
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}

/// Every version stored so far reads as stored.
impl crate::EventSchema for ApprovalEvent {}
