//! Rebuilding a read model from the event store without downtime.
//!
//! Projections write their tables by unqualified name; the transaction's `search_path` decides
//! which copy that is. Live, it is `read` (see [`LIVE_SEARCH_PATH`]). A rebuild of projection
//! `p`:
//!
//! 1. creates schema `rebuild_p` holding copies of `p`'s tables (columns, defaults, indexes,
//!    constraints, foreign keys between them, row-level security, policies, grants, comments),
//!    its own empty `projection_checkpoints` and a `rebuild_progress` row; a rebuild that was
//!    stopped finds the schema and resumes where its last batch committed instead;
//! 2. replays the event store in commit order (the xmin rule of
//!    [`event_store::history::committed_after`]) in batches through the very same
//!    [`checkpoint::apply_batch`] the live projector uses, with `search_path = rebuild_p`, each
//!    batch advancing `rebuild_progress` in its own transaction;
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
//! static, and a rebuild runs exactly the live projector's code. Process managers declare no
//! tables and cannot be rebuilt: their side effects would run again.
use std::time::{Duration, Instant};

use event_store::history::{committed_after, stream_range, CommitPosition};
use event_store::StoredEvent;
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::checkpoint;
use crate::{Projection, ProjectionError};

/// The live projector's `search_path`: the read models in `read`, everything else (checkpoints,
/// timers) in `public`.
pub const LIVE_SEARCH_PATH: &str = "read, public";

/// First key of every advisory lock that guards a projection's tables (the second is the hash
/// of its name), so these locks cannot collide with other advisory locks of the database.
const LOCK_CLASS: i32 = 0x6232_6272; // "b2br"

/// How long the swap waits for a lock before giving up and trying again: queries that arrive
/// meanwhile queue behind it, so it must not wait long.
const SWAP_LOCK_TIMEOUT: &str = "3s";
const SWAP_ATTEMPTS: u32 = 10;

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

/// Where a running (or stopped) rebuild is: replayed events of roughly `total`.
#[derive(Debug, Clone, Serialize)]
pub struct RebuildProgress {
    pub projection: String,
    /// The tenant rebuilt alone, if the rebuild is of one tenant.
    pub tenant: Option<Uuid>,
    /// Events of the store read so far, across resumptions (those the projection does not
    /// handle included).
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
async fn resume_point(
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

/// Creates the rebuild schema afresh with empty copies of the projection's tables.
async fn prepare(
    pool: &PgPool,
    projection: &dyn Projection,
    schema: &str,
) -> Result<(), ProjectionError> {
    let mut tx = pool.begin().await?;
    execute(&mut tx, &format!("drop schema if exists {schema} cascade")).await?;
    execute(&mut tx, &format!("create schema {schema}")).await?;
    execute(
        &mut tx,
        &format!(
            "create table {schema}.projection_checkpoints \
             (like public.projection_checkpoints including all); \
             create table {schema}.rebuild_progress (tx_id bigint not null, \
                 global_position bigint not null, replayed bigint not null)"
        ),
    )
    .await?;
    for table in projection.tables() {
        execute(
            &mut tx,
            &format!("create table {schema}.{table} (like read.{table} including all)"),
        )
        .await?;
    }
    // Printed with only `read` on the path, references to `read` tables come out unqualified;
    // run with the rebuild schema first, those of this projection then bind to the copies.
    execute(&mut tx, "set local search_path = read").await?;
    let copies = copy_statements(&mut tx, projection.tables(), schema).await?;
    execute(
        &mut tx,
        &format!("set local search_path = {schema}, read, public"),
    )
    .await?;
    for statement in copies {
        execute(&mut tx, &statement).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// What `create table ... (like ... including all)` leaves out: foreign keys, row-level
/// security, policies, grants and the table's comment.
async fn copy_statements(
    conn: &mut PgConnection,
    tables: &[&str],
    schema: &str,
) -> Result<Vec<String>, sqlx::Error> {
    let tables: Vec<String> = tables.iter().map(|t| (*t).to_owned()).collect();
    sqlx::query_scalar(include_str!("rebuild_copy.sql"))
        .bind(&tables)
        .bind(schema)
        .fetch_all(conn)
        .await
}

async fn execute(conn: &mut PgConnection, sql: &str) -> Result<(), sqlx::Error> {
    sqlx::raw_sql(sql).execute(conn).await?;
    Ok(())
}

/// The replay of one rebuild.
struct Replay<'a> {
    projection: &'a dyn Projection,
    scope: RebuildScope,
    schema: &'a str,
    batch_size: i64,
    progress: &'a (dyn Fn(&RebuildProgress) + Sync),
}

impl Replay<'_> {
    /// Replays every committed event after `from` into the rebuild schema, one transaction per
    /// batch (which also records how far it got), until a batch comes back short: the replay
    /// has reached what is committed now.
    async fn run(
        &self,
        pool: &PgPool,
        (from, replayed_before): (CommitPosition, i64),
    ) -> Result<(CommitPosition, u64), ProjectionError> {
        let (mut position, mut applied, mut read) = (from, 0u64, 0u64);
        let started = Instant::now();
        loop {
            let mut tx = pool.begin().await?;
            let target = Target {
                projection: self.projection,
                scope: self.scope,
                schema: self.schema,
            };
            let batch = replay_batch(&mut tx, &target, position, self.batch_size).await?;
            position = batch.position;
            applied += batch.applied;
            read += batch.read as u64;
            let replayed = replayed_before + read as i64;
            self.record(&mut tx, position, replayed).await?;
            let total: i64 =
                sqlx::query_scalar("select coalesce(max(global_position), 0) from events")
                    .fetch_one(&mut *tx)
                    .await?;
            tx.commit().await?;
            (self.progress)(&self.progress_of(position, replayed, total, read, started));
            if batch.read < self.batch_size {
                return Ok((position, applied));
            }
        }
    }

    async fn record(
        &self,
        conn: &mut PgConnection,
        position: CommitPosition,
        replayed: i64,
    ) -> Result<(), sqlx::Error> {
        let table = format!("{}.rebuild_progress", self.schema);
        sqlx::raw_sql(&format!("delete from {table}"))
            .execute(&mut *conn)
            .await?;
        sqlx::query(&format!(
            "insert into {table} (tx_id, global_position, replayed) values ($1, $2, $3)"
        ))
        .bind(position.tx_id)
        .bind(position.global_position)
        .bind(replayed)
        .execute(conn)
        .await?;
        Ok(())
    }

    fn progress_of(
        &self,
        position: CommitPosition,
        replayed: i64,
        total: i64,
        read: u64,
        started: Instant,
    ) -> RebuildProgress {
        let rate = read as f64 / started.elapsed().as_secs_f64().max(f64::EPSILON);
        let left = (total - position.global_position).max(0) as f64;
        RebuildProgress {
            projection: self.projection.name().to_owned(),
            tenant: self.scope.tenant(),
            replayed,
            total,
            position: position.global_position,
            rate,
            seconds_left: (rate > 0.0).then(|| left / rate),
        }
    }
}

struct Batch {
    position: CommitPosition,
    read: i64,
    applied: u64,
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

async fn replay_batch(
    conn: &mut PgConnection,
    target: &Target<'_>,
    after: CommitPosition,
    batch_size: i64,
) -> Result<Batch, ProjectionError> {
    let events = committed_after(&mut *conn, after, target.scope.tenant(), batch_size).await?;
    let position = events.last().map_or(after, |(position, _)| *position);
    let read = events.len() as i64;
    let events: Vec<StoredEvent> = events.into_iter().map(|(_, event)| event).collect();
    let search_path = target.search_path();
    let applied =
        checkpoint::apply_batch(conn, &[target.projection], &events, &search_path).await?;
    Ok(Batch {
        position,
        read,
        applied,
    })
}

/// The swap, tried again when it cannot get its locks in time (a long query on the old
/// tables): everything it did is rolled back and redone, so retrying is safe.
async fn swap_with_retry(
    pool: &PgPool,
    target: &Target<'_>,
    mut position: CommitPosition,
) -> Result<(u64, i64), ProjectionError> {
    let mut attempt = 0;
    loop {
        // Catch up outside the swap first, so the swap itself has little left to do.
        let (caught_up, _) = replay_from(pool, target, position).await?;
        position = caught_up;
        match swap(pool, target, position).await {
            Err(ProjectionError::Database(error)) if is_lock_timeout(&error) => {
                attempt += 1;
                if attempt >= SWAP_ATTEMPTS {
                    return Err(ProjectionError::Database(error));
                }
                tracing::warn!(attempt, "swap could not get its locks in time; retrying");
                tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
            }
            done => return done,
        }
    }
}

async fn replay_from(
    pool: &PgPool,
    target: &Target<'_>,
    position: CommitPosition,
) -> Result<(CommitPosition, u64), ProjectionError> {
    let mut tx = pool.begin().await?;
    let batch = replay_batch(&mut tx, target, position, i64::MAX).await?;
    tx.commit().await?;
    Ok((batch.position, batch.applied))
}

fn is_lock_timeout(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "55P03")
}

/// The one short transaction that makes the rebuilt tables (or one tenant's rebuilt rows) the
/// live ones.
async fn swap(
    pool: &PgPool,
    target: &Target<'_>,
    position: CommitPosition,
) -> Result<(u64, i64), ProjectionError> {
    let name = target.projection.name();
    let mut tx = pool.begin().await?;
    execute(
        &mut tx,
        &format!("set local lock_timeout = '{SWAP_LOCK_TIMEOUT}'"),
    )
    .await?;
    sqlx::query("select pg_advisory_xact_lock($1, hashtext($2))")
        .bind(LOCK_CLASS)
        .bind(name)
        .execute(&mut *tx)
        .await?;
    // The live projector is paused from here on; nothing it applied can be missed below.
    let tail = replay_batch(&mut tx, target, position, i64::MAX).await?;
    let ahead = catch_up_live_ahead(&mut tx, target).await?;
    let streams = copy_checkpoints(&mut tx, target).await?;
    match target.scope {
        // The renames take each table's strongest lock, which queries queue behind: last.
        RebuildScope::All => {
            move_tables(&mut tx, target.projection.tables(), target.schema).await?
        }
        RebuildScope::Tenant(tenant) => replace_rows(&mut tx, target, tenant).await?,
    }
    tx.commit().await?;
    Ok((tail.applied + ahead, streams))
}

/// Streams whose live checkpoint is past the rebuild's: the live projector applied events the
/// replay has not read yet (committed behind an older transaction still open, so the xmin rule
/// holds them back). They were acknowledged, so no delivery will bring them again: apply them
/// to the new tables here, from the event store.
async fn catch_up_live_ahead(
    conn: &mut PgConnection,
    target: &Target<'_>,
) -> Result<u64, ProjectionError> {
    let schema = target.schema;
    let ahead: Vec<(String, String, i64)> = sqlx::query_as(&format!(
        "select p.aggregate_type, p.aggregate_id, p.last_sequence \
         from public.projection_checkpoints p \
         left join {schema}.projection_checkpoints r \
           using (projection, aggregate_type, aggregate_id) \
         where p.projection = $1 and p.last_sequence > coalesce(r.last_sequence, 0) \
           and {IN_SCOPE}"
    ))
    .bind(target.projection.name())
    .bind(target.scope.tenant())
    .fetch_all(&mut *conn)
    .await?;
    let mut newest = Vec::with_capacity(ahead.len());
    for (aggregate_type, aggregate_id, last) in ahead {
        let events =
            stream_range(&mut *conn, &aggregate_type, &aggregate_id, last - 1, last).await?;
        newest.extend(events.into_iter().last());
    }
    checkpoint::apply_batch(conn, &[target.projection], &newest, &target.search_path()).await
}

/// Whether the live checkpoint row `p` is of a stream in the rebuild's scope (`$2`: the tenant,
/// or null for all): a stream's tenant is that of its first event.
const IN_SCOPE: &str = "($2::uuid is null or exists (select 1 from public.events e \
     where e.aggregate_type = p.aggregate_type and e.aggregate_id = p.aggregate_id \
       and e.sequence = 1 and e.tenant_id = $2))";

/// Makes the projection's live checkpoints (of the streams in scope) the rebuild's, touching
/// only rows that differ (most are equal when the live projector is current), and returns how
/// many streams they cover.
async fn copy_checkpoints(
    conn: &mut PgConnection,
    target: &Target<'_>,
) -> Result<i64, ProjectionError> {
    let (projection, schema) = (target.projection.name(), target.schema);
    sqlx::query(&format!(
        "delete from public.projection_checkpoints p where p.projection = $1 and not exists \
         (select 1 from {schema}.projection_checkpoints r where r.projection = p.projection \
          and r.aggregate_type = p.aggregate_type and r.aggregate_id = p.aggregate_id) \
         and {IN_SCOPE}"
    ))
    .bind(projection)
    .bind(target.scope.tenant())
    .execute(&mut *conn)
    .await?;
    let copied = sqlx::query(&format!(
        "insert into public.projection_checkpoints \
             (projection, aggregate_type, aggregate_id, last_sequence, updated_at) \
         select projection, aggregate_type, aggregate_id, last_sequence, now() \
         from {schema}.projection_checkpoints where projection = $1 \
         on conflict (projection, aggregate_type, aggregate_id) do update \
         set last_sequence = excluded.last_sequence, updated_at = excluded.updated_at \
         where projection_checkpoints.last_sequence <> excluded.last_sequence"
    ))
    .bind(projection)
    .execute(&mut *conn)
    .await?;
    tracing::debug!(changed = copied.rows_affected(), "checkpoints copied");
    let streams = sqlx::query_scalar(&format!(
        "select count(*) from {schema}.projection_checkpoints where projection = $1"
    ))
    .bind(projection)
    .fetch_one(conn)
    .await?;
    Ok(streams)
}

/// One tenant's live rows replaced by the rebuilt ones (children deleted first and inserted
/// last, as `tables` lists parents first), then the rebuild schema dropped. Readers keep seeing
/// the old rows until the commit.
async fn replace_rows(
    conn: &mut PgConnection,
    target: &Target<'_>,
    tenant: Uuid,
) -> Result<(), ProjectionError> {
    let tables = target.projection.tables();
    for table in tables.iter().rev() {
        sqlx::query(&format!("delete from read.{table} where tenant_id = $1"))
            .bind(tenant)
            .execute(&mut *conn)
            .await?;
    }
    for table in tables {
        execute(
            conn,
            &format!(
                "insert into read.{table} select * from {}.{table}",
                target.schema
            ),
        )
        .await?;
    }
    execute(conn, &format!("drop schema {} cascade", target.schema)).await?;
    Ok(())
}

/// Old tables out, new tables in, dependent views re-pointed, old tables dropped. Views bind
/// to tables, not names: they would follow the old tables out, so their definitions are taken
/// first (fully qualified) and replaced after the move, which keeps their grants and options.
async fn move_tables(
    conn: &mut PgConnection,
    tables: &[&str],
    schema: &str,
) -> Result<(), ProjectionError> {
    let retired = format!("{schema}_retired");
    let views = dependent_views(conn, tables).await?;
    execute(
        conn,
        &format!("drop schema if exists {retired} cascade; create schema {retired}"),
    )
    .await?;
    for table in tables {
        execute(
            conn,
            &format!("alter table read.{table} set schema {retired}"),
        )
        .await?;
        execute(
            conn,
            &format!("alter table {schema}.{table} set schema read"),
        )
        .await?;
    }
    for view in views {
        execute(conn, &view).await?;
    }
    // No `cascade` on the old tables: anything still reading them (a materialized view, say)
    // fails the swap loudly instead of being dropped with them.
    let old: Vec<String> = tables.iter().map(|t| format!("{retired}.{t}")).collect();
    execute(
        conn,
        &format!(
            "drop table {}; drop schema {retired}; drop schema {schema} cascade",
            old.join(", ")
        ),
    )
    .await?;
    Ok(())
}

/// `create or replace view` statements for every view reading the tables, outermost last.
async fn dependent_views(
    conn: &mut PgConnection,
    tables: &[&str],
) -> Result<Vec<String>, sqlx::Error> {
    let tables: Vec<String> = tables.iter().map(|t| (*t).to_owned()).collect();
    execute(conn, "set local search_path = pg_catalog").await?;
    let views = sqlx::query_scalar(include_str!("rebuild_views.sql"))
        .bind(&tables)
        .fetch_all(&mut *conn)
        .await;
    execute(conn, &format!("set local search_path = {LIVE_SEARCH_PATH}")).await?;
    views
}
