//! The rebuild schema's tables: created as copies of the live ones, and at the swap either
//! moved into `read` (a whole rebuild) or copied over one tenant's rows.
//!
//! The copies start with their primary keys and unique constraints (the replay's upserts and
//! loads need them), but without their other indexes and foreign keys: filling a table is
//! cheaper without them, and building an index or checking a foreign key once over the full
//! table is cheaper than maintaining it row by row. [`finish`] adds them before the swap.

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::{execute, Target, LIVE_SEARCH_PATH};
use crate::{Projection, ProjectionError};

/// [`copy_statements`]' kinds of statement: foreign keys (deferred to [`finish`]) and the rest.
const FOREIGN_KEYS: &[i32] = &[1];
const SECURITY_GRANTS_COMMENTS: &[i32] = &[2, 3, 4, 5, 6];

/// Creates the rebuild schema afresh with empty copies of the projection's tables, indexed by
/// their unique keys only.
pub(super) async fn prepare(
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
    for statement in deferred_indexes(&mut tx, projection.tables(), schema, Index::Drop).await? {
        execute(&mut tx, &statement).await?;
    }
    let copies = copy_statements(
        &mut tx,
        projection.tables(),
        schema,
        SECURITY_GRANTS_COMMENTS,
    )
    .await?;
    run_copies(&mut tx, copies, schema).await?;
    tx.commit().await?;
    Ok(())
}

/// Adds what [`prepare`] left out to the filled tables: their other indexes (named as the live
/// ones) and the foreign keys between them, each checked once over the whole table. Only what
/// is still missing, so a rebuild stopped after this ran can run it again.
pub(super) async fn finish(
    pool: &PgPool,
    projection: &dyn Projection,
    schema: &str,
) -> Result<(), ProjectionError> {
    let started = std::time::Instant::now();
    let mut tx = pool.begin().await?;
    for statement in deferred_indexes(&mut tx, projection.tables(), schema, Index::Create).await? {
        execute(&mut tx, &statement).await?;
    }
    let keys = copy_statements(&mut tx, projection.tables(), schema, FOREIGN_KEYS).await?;
    run_copies(&mut tx, keys, schema).await?;
    tx.commit().await?;
    let millis = started.elapsed().as_secs_f64() * 1000.0;
    tracing::info!(millis, "indexes and foreign keys added");
    Ok(())
}

/// Runs [`copy_statements`]' statements. Printed with only `read` on the path (see there),
/// references to `read` tables come out unqualified; run with the rebuild schema first, those
/// of this projection then bind to the copies.
async fn run_copies(
    conn: &mut PgConnection,
    copies: Vec<String>,
    schema: &str,
) -> Result<(), sqlx::Error> {
    execute(
        conn,
        &format!("set local search_path = {schema}, read, public"),
    )
    .await?;
    for statement in copies {
        execute(conn, &statement).await?;
    }
    execute(conn, &format!("set local search_path = {LIVE_SEARCH_PATH}")).await
}

#[derive(Clone, Copy)]
enum Index {
    /// Drop the copies' non-unique indexes (those `like ... including all` made).
    Drop,
    /// Create the live tables' non-unique indexes the copies lack (by name).
    Create,
}

/// The statements that drop or create the copies' non-unique indexes.
async fn deferred_indexes(
    conn: &mut PgConnection,
    tables: &[&str],
    schema: &str,
    what: Index,
) -> Result<Vec<String>, sqlx::Error> {
    let tables: Vec<String> = tables.iter().map(|t| (*t).to_owned()).collect();
    let sql = match what {
        Index::Drop => {
            "select format('drop index %I.%I', $2::text, x.relname) \
             from pg_index i join pg_class t on t.oid = i.indrelid \
             join pg_class x on x.oid = i.indexrelid \
             where t.relnamespace = $2::regnamespace and t.relname = any($1) \
               and not i.indisunique"
        }
        // The definition after its `USING`: method, columns, options and predicate.
        Index::Create => {
            "select format('create index %I on %I.%I %s', x.relname, $2::text, t.relname, \
                    substring(pg_get_indexdef(i.indexrelid) from ' USING .*$')) \
             from pg_index i join pg_class t on t.oid = i.indrelid \
             join pg_class x on x.oid = i.indexrelid \
             where t.relnamespace = 'read'::regnamespace and t.relname = any($1) \
               and not i.indisunique and not exists (select 1 from pg_class c \
                 where c.relnamespace = $2::regnamespace and c.relname = x.relname)"
        }
    };
    sqlx::query_scalar(sql)
        .bind(&tables)
        .bind(schema)
        .fetch_all(conn)
        .await
}

/// What `create table ... (like ... including all)` leaves out, of the kinds `steps` (see
/// `copy.sql`): foreign keys the copies lack, row-level security, policies, grants and the
/// table's comment. Printed with only `read` on the path.
pub(super) async fn copy_statements(
    conn: &mut PgConnection,
    tables: &[&str],
    schema: &str,
    steps: &[i32],
) -> Result<Vec<String>, sqlx::Error> {
    let tables: Vec<String> = tables.iter().map(|t| (*t).to_owned()).collect();
    execute(conn, "set local search_path = read").await?;
    let statements = sqlx::query_scalar(include_str!("copy.sql"))
        .bind(&tables)
        .bind(schema)
        .bind(steps)
        .fetch_all(&mut *conn)
        .await;
    execute(conn, &format!("set local search_path = {LIVE_SEARCH_PATH}")).await?;
    statements
}

/// One tenant's live rows replaced by the rebuilt ones (children deleted first and inserted
/// last, as `tables` lists parents first), then the rebuild schema dropped. Readers keep seeing
/// the old rows until the commit.
pub(super) async fn replace_rows(
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
pub(super) async fn move_tables(
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
pub(super) async fn dependent_views(
    conn: &mut PgConnection,
    tables: &[&str],
) -> Result<Vec<String>, sqlx::Error> {
    let tables: Vec<String> = tables.iter().map(|t| (*t).to_owned()).collect();
    execute(conn, "set local search_path = pg_catalog").await?;
    let views = sqlx::query_scalar(include_str!("views.sql"))
        .bind(&tables)
        .fetch_all(&mut *conn)
        .await;
    execute(conn, &format!("set local search_path = {LIVE_SEARCH_PATH}")).await?;
    views
}
