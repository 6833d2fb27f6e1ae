//! The rebuild schema's tables: created as copies of the live ones, and at the swap either
//! moved into `read` (a whole rebuild) or copied over one tenant's rows.

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::{execute, Target, LIVE_SEARCH_PATH};
use crate::{Projection, ProjectionError};

/// Creates the rebuild schema afresh with empty copies of the projection's tables.
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
pub(super) async fn copy_statements(
    conn: &mut PgConnection,
    tables: &[&str],
    schema: &str,
) -> Result<Vec<String>, sqlx::Error> {
    let tables: Vec<String> = tables.iter().map(|t| (*t).to_owned()).collect();
    sqlx::query_scalar(include_str!("copy.sql"))
        .bind(&tables)
        .bind(schema)
        .fetch_all(conn)
        .await
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
