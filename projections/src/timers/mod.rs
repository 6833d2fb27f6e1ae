//! Durable timers: the worker that runs `scheduled_commands` rows once they fall due.
//!
//! Rows are written by [`crate::process::TimerScheduling`]. Each poll takes a batch of due rows
//! `for update skip locked` (several workers share the table without running a row twice),
//! runs each command through the [`CommandBus`] as `Actor::system("timer")` at the clock's
//! time, and marks the row done, or records the failure and backs off. The commands are
//! idempotent in their aggregates, so a crash between running one and marking its row runs it
//! again harmlessly. In esrs's terms this is an eventual handler.
mod action;

use std::sync::Arc;
use std::time::Duration;

use aggregates::approval::{Approval, ApprovalCommand};
use aggregates::contract::{Contract, ContractCommand};
use aggregates::quote::{Quote, QuoteCommand};
use aggregates::{Actor, Command};
use chrono::{DateTime, Utc};
use event_store::{BusAggregate, Clock, CommandBus, EventMetadata, StoreError};
use sqlx::types::Json;
use sqlx::{FromRow, PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub use action::TimerAction;

use crate::process::issue::settled_refusal;
use crate::ProjectionError;

/// The process name timers act under.
pub const TIMER_PROCESS: &str = "timer";

/// A failed timer is tried again after this much, doubled per attempt up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: chrono::Duration = chrono::Duration::seconds(5);
const MAX_BACKOFF: chrono::Duration = chrono::Duration::hours(1);

#[derive(Debug, Clone)]
pub struct TimerConfig {
    /// How often the worker looks for due rows.
    pub poll_interval: Duration,
    /// Rows per poll.
    pub batch_size: i64,
}

impl Default for TimerConfig {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(1),
            batch_size: 100,
        }
    }
}

/// Runs due timers until `stop` is cancelled (after the batch being fired) or the task is
/// dropped. A failed poll is logged and retried next time.
pub async fn run(
    pool: PgPool,
    bus: Arc<CommandBus>,
    clock: Arc<dyn Clock>,
    (config, stop): (TimerConfig, CancellationToken),
) {
    let worker = TimerWorker { pool, bus, clock };
    while !stop.is_cancelled() {
        match worker.poll(config.batch_size).await {
            // A full batch: more may be due right now.
            Ok(fired) if fired as i64 >= config.batch_size => continue,
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "timer poll failed; trying again"),
        }
        tokio::select! {
            _ = tokio::time::sleep(config.poll_interval) => {}
            _ = stop.cancelled() => {}
        }
    }
}

/// One stored timer.
#[derive(Debug, Clone, FromRow)]
struct Scheduled {
    id: Uuid,
    tenant_id: Uuid,
    aggregate_id: String,
    command: Json<TimerAction>,
    correlation_id: Uuid,
    causation_id: Uuid,
    attempts: i32,
}

/// What became of a timer that ran.
enum Fired {
    Done,
    /// The aggregate refused in a way that means the timer no longer applies.
    NoLongerApplies(String),
    Failed(String),
}

pub struct TimerWorker {
    pool: PgPool,
    bus: Arc<CommandBus>,
    clock: Arc<dyn Clock>,
}

impl TimerWorker {
    pub fn new(pool: PgPool, bus: Arc<CommandBus>, clock: Arc<dyn Clock>) -> Self {
        Self { pool, bus, clock }
    }

    /// Runs the timers due now (at most `batch_size`) and returns how many ran. The rows stay
    /// locked until their outcome is recorded, so no other worker runs them meanwhile.
    pub async fn poll(&self, batch_size: i64) -> Result<usize, ProjectionError> {
        let now = self.clock.now().await?;
        let mut tx = self.pool.begin().await?;
        let due: Vec<Scheduled> = sqlx::query_as(
            "select id, tenant_id, aggregate_id, command, correlation_id, \
             causation_id, attempts from scheduled_commands \
             where done_at is null and not_before <= $1 \
             order by not_before limit $2 for update skip locked",
        )
        .bind(now)
        .bind(batch_size)
        .fetch_all(&mut *tx)
        .await?;
        for timer in &due {
            let fired = self.fire(timer, now).await;
            record(&mut tx, timer, fired, now).await?;
        }
        tx.commit().await?;
        Ok(due.len())
    }

    #[tracing::instrument(
        name = "timer.fire",
        skip_all,
        fields(
            action = timer.command.0.name(),
            tenant = %timer.tenant_id,
            aggregate_id = %timer.aggregate_id,
            correlation_id = %timer.correlation_id,
            attempt = timer.attempts + 1,
        )
    )]
    async fn fire(&self, timer: &Scheduled, now: DateTime<Utc>) -> Fired {
        let action = timer.command.0;
        match self.execute(timer, now).await {
            Ok(version) => {
                tracing::info!(version, "timer ran");
                Fired::Done
            }
            Err(error) => match settled_refusal(&error, action.no_longer_applies()) {
                Some(code) => {
                    tracing::info!(code = code.as_str(), %error, "timer no longer applies; done");
                    Fired::NoLongerApplies(error.to_string())
                }
                None => {
                    tracing::warn!(%error, "timer failed; backing off");
                    Fired::Failed(error.to_string())
                }
            },
        }
    }

    /// The timer's command, decided at `now` by the system.
    async fn execute(&self, timer: &Scheduled, now: DateTime<Utc>) -> Result<u64, StoreError> {
        match timer.command.0 {
            TimerAction::ExpireQuote {} => {
                self.send::<Quote>(timer, now, QuoteCommand::ExpireQuote {})
                    .await
            }
            TimerAction::EscalateLevel {} => {
                self.send::<Approval>(timer, now, ApprovalCommand::EscalateLevel {})
                    .await
            }
            TimerAction::ActivateContract {} => {
                self.send::<Contract>(timer, now, ContractCommand::ActivateContract {})
                    .await
            }
            TimerAction::ExpireContract {} => {
                self.send::<Contract>(timer, now, ContractCommand::ExpireContract {})
                    .await
            }
        }
    }

    /// Runs `body` on the timer's aggregate as `Actor::system("timer")`. Correlation and
    /// causation are the scheduling event's (as for a process manager's command); the request
    /// id is derived from the timer's id and attempt.
    async fn send<A: BusAggregate>(
        &self,
        timer: &Scheduled,
        now: DateTime<Utc>,
        body: A::Body,
    ) -> Result<u64, StoreError> {
        let actor = Actor::system(TIMER_PROCESS);
        let metadata = EventMetadata {
            tenant_id: timer.tenant_id,
            actor: actor.clone(),
            correlation_id: timer.correlation_id,
            causation_id: timer.causation_id,
            request_id: Uuid::new_v5(&timer.id, &timer.attempts.to_be_bytes()),
            recorded_at: now,
            client: None,
            traceparent: None,
            api_key_id: None,
        };
        let command = Command::new(timer.tenant_id, actor, now, body);
        self.bus
            .store::<A>()
            .execute(&timer.aggregate_id, command, None, &metadata)
            .await
    }
}

/// Marks the timer done, or counts the failure and puts the next try off.
async fn record(
    conn: &mut PgConnection,
    timer: &Scheduled,
    fired: Fired,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let (done, note, not_before) = match fired {
        Fired::Done => (true, None, now),
        Fired::NoLongerApplies(reason) => (true, Some(format!("no longer applies: {reason}")), now),
        Fired::Failed(error) => (false, Some(error), now + backoff(timer.attempts)),
    };
    sqlx::query(
        "update scheduled_commands set attempts = attempts + 1, last_error = $2, \
         done_at = case when $3 then $4 end, not_before = $5 where id = $1",
    )
    .bind(timer.id)
    .bind(note)
    .bind(done)
    .bind(now)
    .bind(not_before)
    .execute(conn)
    .await?;
    Ok(())
}

/// [`FIRST_BACKOFF`] doubled per earlier attempt, capped at [`MAX_BACKOFF`].
fn backoff(attempts: i32) -> chrono::Duration {
    let factor = 2i32.saturating_pow(attempts.clamp(0, 16) as u32);
    (FIRST_BACKOFF * factor).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_an_hour() {
        assert_eq!(backoff(0), chrono::Duration::seconds(5));
        assert_eq!(backoff(2), chrono::Duration::seconds(20));
        assert_eq!(backoff(30), chrono::Duration::hours(1));
    }
}
