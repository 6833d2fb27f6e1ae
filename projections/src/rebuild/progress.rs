//! How far a rebuild has got (stderr, `projections status`) and what it reports at the end.

use event_store::history::CommitPosition;
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use super::schema_prefix;
use crate::{Projection, ProjectionError};

/// Where a running (or stopped) rebuild is: replayed events of roughly `total`.
#[derive(Debug, Clone, Serialize)]
pub struct RebuildProgress {
    pub projection: String,
    /// The tenant rebuilt alone, if the rebuild is of one tenant.
    pub tenant: Option<Uuid>,
    /// Events of the projection's aggregates read so far, across resumptions.
    pub replayed: i64,
    /// The store's last global position: what the replay has to reach.
    pub total: i64,
    /// Global position the replay has reached.
    pub position: i64,
    /// Events per second since this run started (or resumed).
    pub rate: f64,
    pub seconds_left: Option<f64>,
}

impl std::fmt::Display for RebuildProgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let percent = 100.0 * self.position as f64 / self.total.max(1) as f64;
        write!(f, "{}", self.projection)?;
        if let Some(tenant) = self.tenant {
            write!(f, " (tenant {tenant})")?;
        }
        write!(
            f,
            ": {} events replayed, position {} of {} ({percent:.1} %)",
            self.replayed, self.position, self.total
        )?;
        if self.rate > 0.0 {
            write!(f, ", {:.0} events/s", self.rate)?;
        }
        match self.seconds_left {
            Some(left) => write!(f, ", about {left:.0} s left"),
            None => Ok(()),
        }
    }
}

/// How a rebuild went.
#[derive(Debug, Clone, Serialize)]
pub struct RebuildReport {
    pub projection: String,
    /// Events applied while the live tables kept serving (this run; a resumed rebuild counts
    /// only what it replayed itself).
    pub replayed: u64,
    /// Events applied inside the swap transaction (the tail and streams the live projector was
    /// ahead on).
    pub swapped_tail: u64,
    /// Streams the new checkpoints cover.
    pub streams: i64,
    pub replay_seconds: f64,
    pub swap_millis: f64,
}

impl RebuildReport {
    /// Replay speed, in events applied per second.
    pub fn events_per_second(&self) -> f64 {
        self.replayed as f64 / self.replay_seconds.max(f64::EPSILON)
    }
}

/// How far each rebuild of `projection` (of everything, or of one tenant) that is running or
/// was stopped has got.
pub(crate) async fn progress(
    pool: &PgPool,
    projection: &dyn Projection,
) -> Result<Vec<RebuildProgress>, ProjectionError> {
    if projection.tables().is_empty() {
        return Ok(Vec::new());
    }
    let prefix = schema_prefix(projection);
    let schemas: Vec<String> = sqlx::query_scalar(
        "select nspname::text from pg_namespace \
         where nspname = $1 or nspname ~ ('^' || $1 || '_[0-9a-f]{32}$') order by 1",
    )
    .bind(&prefix)
    .fetch_all(pool)
    .await?;
    let total: i64 = sqlx::query_scalar("select coalesce(max(global_position), 0) from events")
        .fetch_one(pool)
        .await?;
    let mut found = Vec::new();
    for schema in schemas {
        let Some((position, replayed)) = resume_point(pool, &schema).await? else {
            continue;
        };
        found.push(RebuildProgress {
            projection: projection.name().to_owned(),
            tenant: schema
                .strip_prefix(&prefix)
                .and_then(|rest| rest.strip_prefix('_'))
                .and_then(|tenant| tenant.parse().ok()),
            replayed,
            total,
            position: position.global_position,
            rate: 0.0,
            seconds_left: None,
        });
    }
    Ok(found)
}

/// Where a stopped rebuild of this schema got to, if one did: its schema holds the copies and
/// checkpoints as its last batch committed them.
pub(super) async fn resume_point(
    pool: &PgPool,
    schema: &str,
) -> Result<Option<(CommitPosition, i64)>, ProjectionError> {
    let table = format!("{schema}.rebuild_progress");
    let exists: bool = sqlx::query_scalar("select to_regclass($1) is not null")
        .bind(&table)
        .fetch_one(pool)
        .await?;
    if !exists {
        return Ok(None);
    }
    let row: Option<(i64, i64, i64)> = sqlx::query_as(&format!(
        "select tx_id, global_position, replayed from {table}"
    ))
    .fetch_optional(pool)
    .await?;
    let resumed = row.map(|(tx_id, global_position, replayed)| {
        let position = CommitPosition {
            tx_id,
            global_position,
        };
        (position, replayed)
    });
    Ok(resumed)
}
