//! Where commands, process managers and timers take the time from: one clock for all of them.
//! Aggregates have no clock: the time a command is decided at comes from outside, so tests can
//! move it.
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::PgPool;

/// The current time, as the command API, the process managers and the timer worker see it.
#[async_trait]
pub trait Clock: Send + Sync + std::fmt::Debug {
    async fn now(&self) -> Result<DateTime<Utc>, sqlx::Error>;
}

/// The machine's clock: what production runs on.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

#[async_trait]
impl Clock for SystemClock {
    async fn now(&self) -> Result<DateTime<Utc>, sqlx::Error> {
        Ok(Utc::now())
    }
}

/// **For tests only.** The database's time plus the offset in the one-row `test_clock` table,
/// so a black-box test can move time forward with SQL
/// (`update test_clock set offset_by = offset_by + interval '2 days'`) while the binary runs.
/// [`clock_from_setting`] refuses it outside `APP_ENV=local|test`.
#[derive(Debug, Clone)]
pub struct AdjustableClock {
    pool: PgPool,
}

impl AdjustableClock {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl Clock for AdjustableClock {
    async fn now(&self) -> Result<DateTime<Utc>, sqlx::Error> {
        // `clock_timestamp()`, not `now()`: the latter is frozen at the transaction's start.
        let now = sqlx::query_scalar(
            "select clock_timestamp() + coalesce((select offset_by from test_clock), interval '0')",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(now)
    }
}

/// Why the configured clock cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ClockSettingError {
    #[error("B2B_CLOCK=adjustable is for tests only; APP_ENV is `{0}`, not local or test")]
    NotForThisEnvironment(String),
    #[error("B2B_CLOCK must be `system` or `adjustable`, not `{0}`")]
    Unknown(String),
}

/// The clock named by `B2B_CLOCK` (`system`, the default, or `adjustable`), checked against
/// `APP_ENV`: a moveable clock in production would let anyone with SQL access fire timers.
pub fn clock_from_setting(
    setting: &str,
    app_env: &str,
    pool: PgPool,
) -> Result<Arc<dyn Clock>, ClockSettingError> {
    match setting {
        "" | "system" => Ok(Arc::new(SystemClock)),
        "adjustable" if matches!(app_env, "local" | "test") => {
            Ok(Arc::new(AdjustableClock::new(pool)))
        }
        "adjustable" => Err(ClockSettingError::NotForThisEnvironment(app_env.to_owned())),
        other => Err(ClockSettingError::Unknown(other.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_adjustable_clock_is_refused_outside_local_and_test() {
        let pool = PgPool::connect_lazy("postgres://nobody@127.0.0.1/none").unwrap();
        let refused = clock_from_setting("adjustable", "production", pool.clone());
        assert!(matches!(
            refused,
            Err(ClockSettingError::NotForThisEnvironment(_))
        ));
        assert!(clock_from_setting("adjustable", "test", pool.clone()).is_ok());
        assert!(clock_from_setting("sundial", "test", pool).is_err());
    }
}
