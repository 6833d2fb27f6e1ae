//! Connections. Migrations and operator commands run as the schema owner; services log in as
//! `b2b_api` (the APIs) or `b2b_worker` (relay and projector), which own nothing, are no
//! superusers and cannot become the owner (migration 0021). Every tenant table they read has
//! row-level security on `app.tenant_id`, which a transaction sets for the tenant it acts for.
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool, Postgres, Transaction};
use std::str::FromStr;
use std::time::Duration;
use uuid::Uuid;

use crate::StoreError;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// How long the first connection may take before the server counts as unreachable.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

pub async fn migrate(owner_url: &str) -> Result<(), StoreError> {
    let pool = connect(owner_url, 1).await?;
    MIGRATOR.run(&pool).await.map_err(sqlx::Error::from)?;
    pool.close().await;
    Ok(())
}

/// A pool of connections as the URL's login. One connection is opened first, within
/// [`CONNECT_TIMEOUT`]: a server that is down, a wrong host or a refused login is reported at
/// once, naming the server and the cause, instead of as a pool timeout after seconds.
pub async fn connect(database_url: &str, max_connections: u32) -> Result<PgPool, StoreError> {
    connect_with_plans(database_url, max_connections, Plans::Cached).await
}

/// How a pool's prepared statements are planned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plans {
    /// Postgres's default: after a few executions a statement keeps one generic plan. Right for
    /// the command path's fixed-shape statements, whose planning would cost more than it saves.
    Cached,
    /// Every execution planned for its own parameters and the table's current size. For the
    /// relay, projectors and reactors, whose statements take lists of ids (`= any($1)`): a
    /// generic plan made while a table was small is a sequential scan, kept (until the next
    /// ANALYZE) as the table grows, and planning is small beside a batch.
    PerExecution,
}

/// As [`connect`], with the given planning.
pub async fn connect_with_plans(
    database_url: &str,
    max_connections: u32,
    plans: Plans,
) -> Result<PgPool, StoreError> {
    let mut options = PgConnectOptions::from_str(database_url)?;
    if plans == Plans::PerExecution {
        options = options.options([("plan_cache_mode", "force_custom_plan")]);
    }
    check_login(&options).await?;
    Ok(PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await?)
}

/// Opens and closes one connection as the pool would.
async fn check_login(options: &PgConnectOptions) -> Result<(), StoreError> {
    let unreachable = |cause: String| StoreError::Unreachable {
        service: "Postgres",
        address: format!("{}:{}", options.get_host(), options.get_port()),
        cause,
    };
    let connection = tokio::time::timeout(CONNECT_TIMEOUT, options.connect())
        .await
        .map_err(|_| unreachable(format!("no answer within {CONNECT_TIMEOUT:?}")))?
        .map_err(|error| unreachable(connect_cause(&error, options.get_username())))?;
    // Closing politely is a courtesy; the login has been proven either way.
    let _ = connection.close().await;
    Ok(())
}

/// Why a connection failed, in the words an operator searches for: the socket error
/// ("connection refused"), or the server's own reason for refusing the login.
fn connect_cause(error: &sqlx::Error, user: &str) -> String {
    match error {
        // An OS error's kind reads as "connection refused"; others (a name that does not
        // resolve) say more in their own words.
        sqlx::Error::Io(io) if io.raw_os_error().is_some() => io.kind().to_string(),
        sqlx::Error::Database(db) => format!("login as {user} refused: {}", db.message()),
        sqlx::Error::Tls(tls) => format!("TLS failed: {tls}"),
        other => other.to_string(),
    }
}

/// Whether the pool's login could act past row-level security: a superuser, a role that
/// bypasses it, or one that owns the event store or may become its owner (`set role`).
/// Services refuse to run as such a login.
pub async fn login_is_privileged(pool: &PgPool) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "select r.rolsuper or r.rolbypassrls \
                or pg_has_role(session_user, (select relowner from pg_class \
                                               where oid = 'public.events'::regclass), 'member') \
           from pg_roles r where r.rolname = session_user",
    )
    .fetch_one(pool)
    .await
}

/// A transaction acting for `tenant`: row-level security shows it that tenant's rows only.
/// The tenant is set with the `begin`, in the same round trip.
pub async fn begin_for_tenant(
    pool: &PgPool,
    tenant: Uuid,
) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    pool.begin_with(with_tenant("begin", tenant)).await
}

/// As [`begin_for_tenant`], read only.
pub async fn begin_read_only_for_tenant(
    pool: &PgPool,
    tenant: Uuid,
) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    pool.begin_with(with_tenant("begin transaction read only", tenant))
        .await
}

/// As [`begin_read_only_for_tenant`], with every statement planned for its own parameters
/// ([`Plans::PerExecution`]): for the query API, whose reads by lists of ids must not keep a
/// generic plan made while the tables were small.
pub async fn begin_read_only_for_tenant_planned(
    pool: &PgPool,
    tenant: Uuid,
) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    let begin = with_tenant("begin transaction read only", tenant);
    pool.begin_with(format!(
        "{begin}; select set_config('plan_cache_mode', 'force_custom_plan', true)"
    ))
    .await
}

/// `begin` and the tenant as one simple-protocol message; a UUID's text needs no quoting.
/// `set_config(.., true)` lasts until the transaction ends, so the tenant never carries over
/// to the connection's next user.
fn with_tenant(begin: &str, tenant: Uuid) -> String {
    format!("{begin}; select set_config('app.tenant_id', '{tenant}', true)")
}
