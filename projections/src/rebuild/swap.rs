//! Step 3: the short transaction that pauses the live projector, applies what is left and
//! makes the rebuilt tables (or rows) and checkpoints the live ones.
use std::time::Duration;

use event_store::history::{stream_range, CommitPosition};
use sqlx::{PgConnection, PgPool};

use super::replay::replay_batch;
use super::shadow::{move_tables, replace_rows};
use super::{execute, RebuildScope, Target, LOCK_CLASS};
use crate::checkpoint;
use crate::ProjectionError;

/// How long the swap waits for a lock before giving up and trying again: queries that arrive
/// meanwhile queue behind it, so it must not wait long.
pub(super) const SWAP_LOCK_TIMEOUT: &str = "3s";

pub(super) const SWAP_ATTEMPTS: u32 = 10;

/// The swap, tried again when it cannot get its locks in time (a long query on the old
/// tables): everything it did is rolled back and redone, so retrying is safe.
pub(super) async fn swap_with_retry(
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

pub(super) async fn replay_from(
    pool: &PgPool,
    target: &Target<'_>,
    position: CommitPosition,
) -> Result<(CommitPosition, u64), ProjectionError> {
    let mut tx = pool.begin().await?;
    let batch = replay_batch(&mut tx, target, position, i64::MAX).await?;
    tx.commit().await?;
    Ok((batch.position, batch.applied))
}

pub(super) fn is_lock_timeout(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "55P03")
}

/// The one short transaction that makes the rebuilt tables (or one tenant's rebuilt rows) the
/// live ones.
pub(super) async fn swap(
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
pub(super) async fn catch_up_live_ahead(
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
pub(super) const IN_SCOPE: &str = "($2::uuid is null or exists (select 1 from public.events e \
     where e.aggregate_type = p.aggregate_type and e.aggregate_id = p.aggregate_id \
       and e.sequence = 1 and e.tenant_id = $2))";

/// Makes the projection's live checkpoints (of the streams in scope) the rebuild's, touching
/// only rows that differ (most are equal when the live projector is current), and returns how
/// many streams they cover.
pub(super) async fn copy_checkpoints(
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
