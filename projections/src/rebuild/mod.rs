//! Rebuilding a read model from the event store without downtime.
//!
//! Projections write their tables by unqualified name; the transaction's `search_path` decides
//! which copy that is. Live, it is `read` (see [`LIVE_SEARCH_PATH`]). A rebuild of projection
//! `p`:
//!
//! 1. creates schema `rebuild_p` holding copies of `p`'s tables (columns, defaults, primary
//!    keys and unique constraints, row-level security, policies, grants, comments), its own
//!    empty `projection_checkpoints` and a `rebuild_progress` row; a rebuild that was stopped
//!    finds the schema and resumes where its last batch committed instead;
//! 2. replays the events of `p`'s aggregates in commit order (the xmin rule of
//!    [`event_store::history::committed_after`]), streamed by one query in a task of its own
//!    while the previous batch is written, in batches folded in memory by the read model's own
//!    fold and written in bulk by its [`Replayer`] (new rows and checkpoints with `COPY`), with
//!    `search_path = rebuild_p`, each batch advancing `rebuild_progress` in the same
//!    transaction; then (a whole rebuild) adds the other indexes and the foreign keys between
//!    the tables, once over the filled tables;
//! 3. in one short transaction: takes `p`'s advisory lock exclusively (the live projector
//!    takes it shared per delivery, so it pauses here, holding nothing else), applies the
//!    remaining tail, catches up every stream the live projector has seen further than the
//!    replay, copies the rebuild's checkpoints over `p`'s live ones, moves the old tables out
//!    and the new ones into `read`, points dependent views at the new tables, drops the old
//!    ones, commits.
//!
//! Queries keep reading the old tables until that commit, and wait only for the renames at its
//! very end (bounded by `lock_timeout`; the whole swap retries if it cannot get the locks).
//! The checkpoints move with the tables, so the live projector neither applies anything twice
//! nor skips anything when it resumes.
//!
//! A rebuild of one tenant ([`RebuildScope::Tenant`], schema `rebuild_p_<tenant>`) replays only
//! that tenant's events and, in step 3, replaces that tenant's rows and checkpoints in the live
//! tables instead of moving tables: every other tenant's rows stay as they are, untouched.
//!
//! We chose `search_path` over threading table names through every statement: the SQL stays
//! static, and a rebuild runs the live projector's fold and row code (the tail and catch-up of
//! step 3 even its [`crate::checkpoint::apply_batch`]). Process managers declare no
//! tables and cannot be rebuilt: their side effects would run again.
use std::time::Instant;

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::{Projection, ProjectionError};

mod fold;
mod progress;
mod replay;
mod shadow;
mod swap;

pub(crate) use fold::Folder;
pub use fold::{Folded, Replayer};
pub(crate) use progress::progress;
use progress::resume_point;
pub use progress::{RebuildProgress, RebuildReport};
use replay::Replay;
use shadow::{finish, prepare};
use swap::swap_with_retry;

/// The live projector's `search_path`: the read models in `read`, everything else (checkpoints,
/// timers) in `public`.
pub const LIVE_SEARCH_PATH: &str = "read, public";

/// First key of every advisory lock that guards a projection's tables (the second is the hash
/// of its name), so these locks cannot collide with other advisory locks of the database.
const LOCK_CLASS: i32 = 0x6232_6272; // "b2br"

/// Sets the event's tenant (row-level security checks every write against it) and where the
/// projection's unqualified table names point, for the rest of the transaction.
pub(crate) async fn enter(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    search_path: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "select set_config('app.tenant_id', $1, true), set_config('search_path', $2, true)",
    )
    .bind(tenant_id.to_string())
    .bind(search_path)
    .execute(conn)
    .await?;
    Ok(())
}

/// Taken by the live projector, shared, before it touches these projections' checkpoints or
/// tables (one statement for all of them); a rebuild's swap takes its projection's lock
/// exclusively, so deliveries pause (holding no other lock) while the tables change places.
pub(crate) async fn hold_shared(
    conn: &mut PgConnection,
    projections: &[&str],
) -> Result<(), sqlx::Error> {
    sqlx::query("select pg_advisory_xact_lock_shared($1, hashtext(p)) from unnest($2::text[]) p")
        .bind(LOCK_CLASS)
        .bind(projections)
        .execute(conn)
        .await?;
    Ok(())
}

/// What a rebuild replays and replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RebuildScope {
    /// Every tenant: new tables are swapped in.
    All,
    /// One tenant: its rows and checkpoints are replaced in the live tables.
    Tenant(Uuid),
}

impl RebuildScope {
    fn tenant(self) -> Option<Uuid> {
        match self {
            Self::All => None,
            Self::Tenant(tenant) => Some(tenant),
        }
    }
}

/// Rebuilds `projection` (all of it, or one tenant's rows) from the event store and swaps it
/// in, resuming a rebuild of the same scope that was stopped part-way. `pool` must connect as the owner of the read tables (the migration role):
/// it creates, moves and drops them. `progress` hears after every batch.
#[tracing::instrument(name = "projections.rebuild", skip_all, fields(projection = projection.name()))]
pub async fn rebuild(
    pool: &PgPool,
    projection: &dyn Projection,
    scope: RebuildScope,
    batch_size: i64,
    progress: &(dyn Fn(&RebuildProgress) + Sync),
) -> Result<RebuildReport, ProjectionError> {
    let schema = rebuild_schema(projection, scope)?;
    let _only_one = exclusive_rebuild(pool, projection.name()).await?;
    let resumed = resume_point(pool, &schema).await?;
    match &resumed {
        Some((position, replayed)) => {
            tracing::info!(?position, replayed, "resuming a stopped rebuild")
        }
        None => prepare(pool, projection, &schema).await?,
    }
    let started = Instant::now();
    let replay_from = Replay {
        projection,
        scope,
        schema: &schema,
        batch_size,
        progress,
    };
    let (position, replayed) = replay_from.run(pool, resumed.unwrap_or_default()).await?;
    if scope == RebuildScope::All {
        finish(pool, projection, &schema).await?;
    }
    let replay_seconds = started.elapsed().as_secs_f64();
    tracing::info!(replayed, replay_seconds, "replayed; swapping");
    let started = Instant::now();
    let target = Target {
        projection,
        scope,
        schema: &schema,
    };
    let (swapped_tail, streams) = swap_with_retry(pool, &target, position).await?;
    let report = RebuildReport {
        projection: projection.name().to_owned(),
        replayed,
        swapped_tail,
        streams,
        replay_seconds,
        swap_millis: started.elapsed().as_secs_f64() * 1000.0,
    };
    tracing::info!(?report, "rebuilt");
    Ok(report)
}

fn rebuild_schema(
    projection: &dyn Projection,
    scope: RebuildScope,
) -> Result<String, ProjectionError> {
    if projection.tables().is_empty() {
        return Err(ProjectionError::NotRebuildable(
            projection.name().to_owned(),
        ));
    }
    let base = schema_prefix(projection);
    Ok(match scope {
        RebuildScope::All => base,
        RebuildScope::Tenant(tenant) => format!("{base}_{}", tenant.simple()),
    })
}

fn schema_prefix(projection: &dyn Projection) -> String {
    format!("rebuild_{}", projection.name().replace('-', "_"))
}

/// A session-level advisory lock, held on its own connection for the whole rebuild, so two
/// rebuilds of one projection cannot interleave (they would share the rebuild schema).
async fn exclusive_rebuild(
    pool: &PgPool,
    projection: &str,
) -> Result<PgConnection, ProjectionError> {
    let mut conn = pool.acquire().await?;
    let won: bool = sqlx::query_scalar("select pg_try_advisory_lock($1, hashtext($2) # 1)")
        .bind(LOCK_CLASS)
        .bind(projection)
        .fetch_one(&mut *conn)
        .await?;
    if !won {
        return Err(ProjectionError::RebuildRunning(projection.to_owned()));
    }
    // Returned to the pool, the connection would keep the lock after the rebuild: detached,
    // it is closed when dropped, which releases the lock however the rebuild ends.
    Ok(conn.detach())
}

async fn execute(conn: &mut PgConnection, sql: &str) -> Result<(), sqlx::Error> {
    sqlx::raw_sql(sql).execute(conn).await?;
    Ok(())
}

/// What a rebuild writes: which projection, for whom, into which schema.
struct Target<'a> {
    projection: &'a dyn Projection,
    scope: RebuildScope,
    schema: &'a str,
}

impl Target<'_> {
    fn search_path(&self) -> String {
        format!("{}, public", self.schema)
    }
}
