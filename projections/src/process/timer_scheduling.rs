//! Turns events into durable timers: rows of `scheduled_commands` that the timer worker runs
//! when they fall due. Written in the checkpoint's transaction, so a schedule exists exactly
//! when its event counts as processed.
use aggregates::approval::{Approval, ApprovalEvent};
use aggregates::contract::{Contract, ContractEvent};
use aggregates::quote::{Quote, QuoteEvent};
use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use cqrs_es::Aggregate;
use event_store::history::stream_range;
use event_store::StoredEvent;
use sqlx::types::Json;
use sqlx::PgConnection;

use super::decode;
use super::issue::ProcessIds;
use super::Reactor;
use crate::stamp::{revealed, Keys};
use crate::timers::TimerAction;
use crate::ProjectionError;

/// Quote drafted → expire at valid-until; approval requested / level approved / level escalated
/// → escalate when the current level is due; contract approved or signed → activate on the
/// start date; contract activated or renewed → expire on the end date.
pub struct TimerScheduling {
    ids: ProcessIds,
}

impl TimerScheduling {
    pub fn new(ids: ProcessIds) -> Self {
        Self { ids }
    }
}

#[async_trait]
impl Reactor for TimerScheduling {
    const NAME: &'static str = "process.timers";
    const SUBSCRIBES: &'static [(&'static str, &'static str)] = &[
        (Quote::TYPE, "QuoteDrafted"),
        (Approval::TYPE, "ApprovalRequested"),
        (Approval::TYPE, "LevelApproved"),
        (Approval::TYPE, "LevelEscalated"),
        (Contract::TYPE, "ContractApproved"),
        (Contract::TYPE, "ContractSigned"),
        (Contract::TYPE, "ContractActivated"),
        (Contract::TYPE, "ContractRenewed"),
    ];

    async fn react(
        &self,
        conn: &mut PgConnection,
        event: &StoredEvent,
    ) -> Result<(), ProjectionError> {
        let timer = match event.aggregate_type.as_str() {
            Quote::TYPE => quote_timer(event)?,
            Approval::TYPE => approval_timer(event)?,
            _ => contract_timer(conn, event).await?,
        };
        match timer {
            Some((action, due_at)) => schedule(conn, &self.ids, event, action, due_at).await,
            None => Ok(()),
        }
    }
}

type Timer = Option<(TimerAction, DateTime<Utc>)>;

fn quote_timer(event: &StoredEvent) -> Result<Timer, ProjectionError> {
    Ok(match decode(event)? {
        QuoteEvent::QuoteDrafted { valid_until, .. } => {
            Some((TimerAction::ExpireQuote {}, valid_until))
        }
        _ => None,
    })
}

/// The request's first level is current at first; later ones become current (with their own
/// due time) as levels are approved or escalate.
fn approval_timer(event: &StoredEvent) -> Result<Timer, ProjectionError> {
    let due_at = match decode(event)? {
        ApprovalEvent::ApprovalRequested { levels, .. } => levels.first().map(|l| l.due_at),
        ApprovalEvent::LevelApproved { next_due_at, .. } => next_due_at,
        ApprovalEvent::LevelEscalated { new_due_at, .. } => Some(new_due_at),
        _ => None,
    };
    Ok(due_at.map(|due_at| (TimerAction::EscalateLevel {}, due_at)))
}

async fn contract_timer(
    conn: &mut PgConnection,
    event: &StoredEvent,
) -> Result<Timer, ProjectionError> {
    let (action, date) = match decode(event)? {
        ContractEvent::ContractApproved { .. } | ContractEvent::ContractSigned { .. } => {
            let term = term_before(conn, event).await?;
            (TimerAction::ActivateContract {}, term.start)
        }
        ContractEvent::ContractActivated { .. } => {
            let term = term_before(conn, event).await?;
            (TimerAction::ExpireContract {}, term.end)
        }
        ContractEvent::ContractRenewed { new_end_date, .. } => {
            (TimerAction::ExpireContract {}, new_end_date)
        }
        _ => return Ok(None),
    };
    Ok(Some((action, start_of_day(date))))
}

/// Contract dates are calendar days; the aggregate compares them with the UTC date of the
/// command's time, so the day starts at midnight UTC.
fn start_of_day(date: NaiveDate) -> DateTime<Utc> {
    date.and_hms_opt(0, 0, 0)
        .expect("midnight exists")
        .and_utc()
}

struct Term {
    start: NaiveDate,
    end: NaiveDate,
}

/// The contract's start and current end date before `event`, read from its own stream: the
/// approval, signature and activation events do not repeat them.
async fn term_before(
    conn: &mut PgConnection,
    event: &StoredEvent,
) -> Result<Term, ProjectionError> {
    let earlier = stream_range(
        &mut *conn,
        &event.aggregate_type,
        &event.aggregate_id,
        0,
        event.sequence - 1,
    )
    .await?;
    let earlier: Vec<&StoredEvent> = earlier.iter().collect();
    let mut term = None;
    for stored in revealed(conn, &earlier, Keys::Released).await? {
        term = match (decode::<ContractEvent>(&stored)?, term) {
            (
                ContractEvent::ContractDrafted {
                    start_date,
                    end_date,
                    ..
                },
                _,
            )
            | (
                ContractEvent::ContractDraftedFromQuote {
                    start_date,
                    end_date,
                    ..
                },
                _,
            ) => Some(Term {
                start: start_date,
                end: end_date,
            }),
            (ContractEvent::ContractRenewed { new_end_date, .. }, Some(Term { start, .. })) => {
                Some(Term {
                    start,
                    end: new_end_date,
                })
            }
            (_, term) => term,
        };
    }
    term.ok_or_else(|| ProjectionError::inconsistent(event, "the contract was never drafted"))
}

/// Stores the timer under an id derived from the event and the action: a redelivered event
/// (or a catch-up that replays it) inserts the same id, and the first row stays.
#[tracing::instrument(
    name = "process.schedule",
    skip_all,
    fields(
        action = action.name(),
        tenant = %event.tenant_id,
        aggregate_id = %event.aggregate_id,
        correlation_id = %ids.correlation_of(event),
        %due_at,
    )
)]
async fn schedule(
    conn: &mut PgConnection,
    ids: &ProcessIds,
    event: &StoredEvent,
    action: TimerAction,
    due_at: DateTime<Utc>,
) -> Result<(), ProjectionError> {
    let inserted = sqlx::query(
        "insert into scheduled_commands (id, tenant_id, due_at, not_before, aggregate_type, \
         aggregate_id, command, correlation_id, causation_id) \
         values ($1, $2, $3, $3, $4, $5, $6, $7, $8) on conflict (id) do nothing",
    )
    .bind(ids.derived(event, action.name()))
    .bind(event.tenant_id)
    .bind(due_at)
    .bind(action.aggregate_type())
    .bind(&event.aggregate_id)
    .bind(Json(action))
    .bind(ids.correlation_of(event))
    .bind(ProcessIds::causation_of(event))
    .execute(conn)
    .await?;
    tracing::info!(new = inserted.rows_affected() == 1, "timer scheduled");
    Ok(())
}
