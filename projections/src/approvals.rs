//! `read.approvals` and `read.approval_levels`: one row per approval request and one per level
//! of its chain, so "who approved what, when, and which SLA was breached" is plain SQL.
use aggregates::approval::{Approval, ApprovalEvent, Level, Subject};
use aggregates::Money;
use async_trait::async_trait;
use event_store::StoredEvent;
use sqlx::postgres::PgArguments;
use sqlx::query::Query;
use sqlx::{PgConnection, Postgres};
use uuid::Uuid;

use crate::read_model::ReadModel;
use crate::stamp::{one_row, Stamp};
use crate::ProjectionError;

/// Maintains `read.approvals` and `read.approval_levels` from Approval events. Replayable: see
/// [`Projection`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ApprovalsProjection;

#[async_trait]
impl ReadModel for ApprovalsProjection {
    const NAME: &'static str = "approvals";
    const TABLES: &'static [&'static str] = &["approvals", "approval_levels"];
    type Aggregate = Approval;

    async fn apply_change(
        &self,
        conn: &mut PgConnection,
        stamp: &Stamp,
        event: &StoredEvent,
        change: ApprovalEvent,
    ) -> Result<(), ProjectionError> {
        use ApprovalEvent as E;
        if let E::ApprovalRequested {
            subject,
            amount,
            requester_id,
            levels,
        } = &change
        {
            let request = Requested {
                subject,
                amount,
                requester_id: *requester_id,
                levels,
            };
            return request_approval(conn, stamp, &request).await;
        }
        for level_change in level_queries(stamp, &change) {
            let done = level_change.execute(&mut *conn).await?;
            one_row(done, event, "approval level")?;
        }
        let done = approval_query(stamp, &change).execute(conn).await?;
        one_row(done, event, "approval")
    }
}

type PgQuery<'q> = Query<'q, Postgres, PgArguments>;

struct Requested<'a> {
    subject: &'a Subject,
    amount: &'a Money,
    requester_id: Uuid,
    levels: &'a [Level],
}

/// The request (re)writes its row and its levels, so a rebuild over existing rows ends where
/// one over empty tables would.
async fn request_approval(
    conn: &mut PgConnection,
    stamp: &Stamp,
    request: &Requested<'_>,
) -> Result<(), ProjectionError> {
    let level_count = i32::try_from(request.levels.len()).unwrap_or(i32::MAX);
    sqlx::query(
        "insert into approvals (id, tenant_id, subject_type, subject_id, subject_version, \
             amount, currency, requester_id, status, current_level, level_count, requested_at, \
             version, updated_at) \
         values ($1, $2, $3, $4, $5, $6, $7, $8, 'Pending', case when $9 > 0 then 1 end, $9, \
             $10, $11, $10) \
         on conflict (id) do update set tenant_id = excluded.tenant_id, \
             subject_type = excluded.subject_type, subject_id = excluded.subject_id, \
             subject_version = excluded.subject_version, amount = excluded.amount, \
             currency = excluded.currency, requester_id = excluded.requester_id, \
             status = excluded.status, current_level = excluded.current_level, \
             level_count = excluded.level_count, requested_at = excluded.requested_at, \
             decided_at = null, decided_by = null, decision_reason = null, \
             version = excluded.version, updated_at = excluded.updated_at",
    )
    .bind(stamp.id)
    .bind(stamp.tenant_id)
    .bind(request.subject.subject_type.as_str())
    .bind(request.subject.id)
    .bind(i64::try_from(request.subject.version).unwrap_or(i64::MAX))
    .bind(request.amount.amount)
    .bind(request.amount.currency.as_str())
    .bind(request.requester_id)
    .bind(level_count)
    .bind(stamp.at)
    .bind(stamp.version)
    .execute(&mut *conn)
    .await?;
    sqlx::query("delete from approval_levels where approval_id = $1")
        .bind(stamp.id)
        .execute(&mut *conn)
        .await?;
    for (number, level) in (1..).zip(request.levels) {
        sqlx::query(
            "insert into approval_levels (approval_id, level, tenant_id, role, due_at) \
             values ($1, $2, $3, $4, $5)",
        )
        .bind(stamp.id)
        .bind(number)
        .bind(stamp.tenant_id)
        .bind(level.role.as_str())
        .bind(level.due_at)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Levels are numbered from 1 in events and in the table alike.
fn level_number(level: u32) -> i32 {
    i32::try_from(level).unwrap_or(i32::MAX)
}

/// An update of one level's row; `$1` is the approval, `$2` the level, the change's own values
/// start at `$3`.
macro_rules! level {
    ($set:literal) => {
        concat!(
            "update approval_levels set ",
            $set,
            " where approval_id = $1 and level = $2"
        )
    };
}

/// The changes an event makes to level rows: each must hit exactly one row.
fn level_queries<'q>(stamp: &Stamp, change: &'q ApprovalEvent) -> Vec<PgQuery<'q>> {
    use ApprovalEvent as E;
    let q = |sql, level: u32| sqlx::query(sql).bind(stamp.id).bind(level_number(level));
    match change {
        E::LevelApproved {
            level,
            approver_id,
            comment,
            next_due_at,
        } => {
            let approved = q(
                level!("approved_by = $3, approved_at = $4, comment = $5"),
                *level,
            )
            .bind(approver_id)
            .bind(stamp.at)
            .bind(comment.as_ref().map(|c| c.as_str()));
            // The next level's SLA clock starts when it becomes current.
            let next = next_due_at
                .map(|due_at| q(level!("due_at = $3"), level.saturating_add(1)).bind(due_at));
            std::iter::once(approved).chain(next).collect()
        }
        E::LevelDelegated { level, to, .. } => {
            vec![q(level!("delegated_to = $3"), *level).bind(to)]
        }
        // Escalation drops any delegation; the first breach is the one SLA reports count.
        E::LevelEscalated {
            level,
            to_role,
            overdue_since,
            new_due_at,
            ..
        } => vec![q(
            level!(
                "role = $3, due_at = $4, delegated_to = null, escalated = true, \
                 breached_at = coalesce(breached_at, $5)"
            ),
            *level,
        )
        .bind(to_role.as_str())
        .bind(new_due_at)
        .bind(overdue_since)],
        _ => Vec::new(),
    }
}

/// An update of the approval's row that also stamps it; `$1`..`$3` are the approval, its
/// stream version and the event's time, the change's own values start at `$4`.
macro_rules! stamped {
    ($set:literal) => {
        concat!(
            "update approvals set ",
            $set,
            ", version = $2, updated_at = $3 where id = $1"
        )
    };
}

fn approval_query<'q>(stamp: &Stamp, change: &'q ApprovalEvent) -> PgQuery<'q> {
    use ApprovalEvent as E;
    let q = |sql| {
        sqlx::query(sql)
            .bind(stamp.id)
            .bind(stamp.version)
            .bind(stamp.at)
    };
    match change {
        // The next level becomes current, and its SLA clock restarts now.
        E::LevelApproved { level, .. } => {
            let next = level_number(*level).saturating_add(1);
            q(stamped!(
                "current_level = case when $4 <= level_count then $4 end"
            ))
            .bind(next)
        }
        E::ApprovalGranted { .. } => q(stamped!(
            "status = 'Approved', current_level = null, decided_at = $3, decided_by = $4"
        ))
        .bind(stamp.by),
        E::ApprovalRejected {
            approver_id,
            reason,
            ..
        } => q(stamped!(
            "status = 'Rejected', current_level = null, decided_at = $3, decided_by = $4, \
             decision_reason = $5"
        ))
        .bind(approver_id)
        .bind(reason.as_str()),
        E::ApprovalCancelled { reason, .. } => q(stamped!(
            "status = 'Cancelled', current_level = null, decided_at = $3, decided_by = $4, \
             decision_reason = $5"
        ))
        .bind(stamp.by)
        .bind(reason.as_str()),
        E::LevelDelegated { .. } | E::LevelEscalated { .. } | E::ApprovalRequested { .. } => {
            q(stamped!("status = status"))
        }
    }
}
