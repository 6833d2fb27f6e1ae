//! `read.approvals` and `read.approval_levels`: one row per approval request and one per level
//! of its chain, so "who approved what, when, and which SLA was breached" is plain SQL.
use aggregates::approval::{Approval, ApprovalEvent};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use uuid::Uuid;

use crate::read_model::{existing, Inconsistent, ReadModel};
use crate::rows::{stored, Row, WithChildren};
use crate::stamp::Stamp;

/// Maintains `read.approvals` and `read.approval_levels` from Approval events. Replayable: see
/// [`ReadModel`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ApprovalsProjection;

/// A row of `read.approvals`.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub(crate) struct ApprovalRow {
    id: Uuid,
    tenant_id: Uuid,
    subject_type: String,
    subject_id: Uuid,
    subject_version: i64,
    amount: Decimal,
    currency: String,
    requester_id: Uuid,
    status: String,
    current_level: Option<i32>,
    level_count: i32,
    requested_at: DateTime<Utc>,
    decided_at: Option<DateTime<Utc>>,
    decided_by: Option<Uuid>,
    decision_reason: Option<String>,
    version: i64,
    updated_at: DateTime<Utc>,
}

impl Row for ApprovalRow {
    const TABLE: &'static str = "approvals";
    const ENTITY: &'static str = "id";
    const KEY: &'static str = "id";
    type Key = ();

    fn key(&self) {}
}

/// A row of `read.approval_levels`; levels are numbered from 1 in events and table alike.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub(crate) struct LevelRow {
    approval_id: Uuid,
    level: i32,
    tenant_id: Uuid,
    role: String,
    due_at: DateTime<Utc>,
    approved_by: Option<Uuid>,
    approved_at: Option<DateTime<Utc>>,
    comment: Option<String>,
    delegated_to: Option<Uuid>,
    escalated: bool,
    breached_at: Option<DateTime<Utc>>,
}

impl Row for LevelRow {
    const TABLE: &'static str = "approval_levels";
    const ENTITY: &'static str = "approval_id";
    const KEY: &'static str = "approval_id, level";
    type Key = i32;

    fn key(&self) -> i32 {
        self.level
    }
}

type ApprovalRows = WithChildren<ApprovalRow, LevelRow>;

impl ReadModel for ApprovalsProjection {
    const NAME: &'static str = "approvals";
    type Aggregate = Approval;
    type Entity = ApprovalRows;

    fn fold(
        rows: &mut ApprovalRows,
        stamp: &Stamp,
        change: ApprovalEvent,
    ) -> Result<(), Inconsistent> {
        use ApprovalEvent as E;
        if let E::ApprovalRequested { .. } = change {
            *rows = requested(stamp, change);
            return Ok(());
        }
        let approval = existing(&mut rows.row, "no such approval row")?;
        match change {
            E::ApprovalRequested { .. } => unreachable!("handled above"),
            // The next level becomes current, and its SLA clock restarts now.
            E::LevelApproved {
                level,
                approver_id,
                comment,
                next_due_at,
            } => {
                let approved = level_row(&mut rows.children, level)?;
                approved.approved_by = Some(approver_id);
                approved.approved_at = Some(stamp.at);
                approved.comment = comment.map(|c| c.as_str().to_owned());
                if let Some(due_at) = next_due_at {
                    level_row(&mut rows.children, level.saturating_add(1))?.due_at = stored(due_at);
                }
                let next = level_number(level).saturating_add(1);
                approval.current_level = (next <= approval.level_count).then_some(next);
            }
            E::ApprovalGranted { .. } => approval.decide("Approved", stamp, stamp.by, None),
            E::ApprovalRejected {
                approver_id,
                reason,
                ..
            } => approval.decide("Rejected", stamp, Some(approver_id), Some(reason.as_str())),
            E::ApprovalCancelled { reason, .. } => {
                approval.decide("Cancelled", stamp, stamp.by, Some(reason.as_str()))
            }
            E::LevelDelegated { level, to, .. } => {
                level_row(&mut rows.children, level)?.delegated_to = Some(to);
            }
            // Escalation drops any delegation; the first breach is the one SLA reports count.
            E::LevelEscalated {
                level,
                to_role,
                overdue_since,
                new_due_at,
                ..
            } => {
                let escalated = level_row(&mut rows.children, level)?;
                escalated.role = to_role.as_str().to_owned();
                escalated.due_at = stored(new_due_at);
                escalated.delegated_to = None;
                escalated.escalated = true;
                escalated.breached_at = escalated.breached_at.or(Some(stored(overdue_since)));
            }
        }
        approval.version = stamp.version;
        approval.updated_at = stamp.at;
        Ok(())
    }
}

/// The request (re)writes its row and its levels.
fn requested(stamp: &Stamp, change: ApprovalEvent) -> ApprovalRows {
    let ApprovalEvent::ApprovalRequested {
        subject,
        amount,
        requester_id,
        levels,
    } = change
    else {
        unreachable!("called for requests only")
    };
    let level_count = i32::try_from(levels.len()).unwrap_or(i32::MAX);
    let row = ApprovalRow {
        id: stamp.id,
        tenant_id: stamp.tenant_id,
        subject_type: subject.subject_type.as_str().to_owned(),
        subject_id: subject.id,
        subject_version: i64::try_from(subject.version).unwrap_or(i64::MAX),
        amount: amount.amount,
        currency: amount.currency.as_str().to_owned(),
        requester_id,
        status: "Pending".to_owned(),
        current_level: (level_count > 0).then_some(1),
        level_count,
        requested_at: stamp.at,
        decided_at: None,
        decided_by: None,
        decision_reason: None,
        version: stamp.version,
        updated_at: stamp.at,
    };
    let children = (1..)
        .zip(levels)
        .map(|(number, level)| LevelRow {
            approval_id: stamp.id,
            level: number,
            tenant_id: stamp.tenant_id,
            role: level.role.as_str().to_owned(),
            due_at: stored(level.due_at),
            approved_by: None,
            approved_at: None,
            comment: None,
            delegated_to: None,
            escalated: false,
            breached_at: None,
        })
        .collect();
    WithChildren {
        row: Some(row),
        children,
    }
}

impl ApprovalRow {
    /// The request is decided: no level is current any more.
    fn decide(&mut self, status: &str, stamp: &Stamp, by: Option<Uuid>, reason: Option<&str>) {
        self.status = status.to_owned();
        self.current_level = None;
        self.decided_at = Some(stamp.at);
        self.decided_by = by;
        if let Some(reason) = reason {
            self.decision_reason = Some(reason.to_owned());
        }
    }
}

fn level_number(level: u32) -> i32 {
    i32::try_from(level).unwrap_or(i32::MAX)
}

fn level_row(levels: &mut [LevelRow], level: u32) -> Result<&mut LevelRow, Inconsistent> {
    let number = level_number(level);
    levels
        .iter_mut()
        .find(|row| row.level == number)
        .ok_or(Inconsistent("no such approval level row"))
}
