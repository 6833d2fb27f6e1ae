//! Connections. Migrations and operator commands run as the schema owner; services log in as
//! `b2b_api` (the APIs) or `b2b_worker` (relay and projector), which own nothing, are no
//! superusers and cannot become the owner (migration 0021). Every tenant table they read has
//! row-level security on `app.tenant_id`, which a transaction sets for the tenant it acts for.
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres, Transaction};
use std::str::FromStr;
use std::time::Duration;
use uuid::Uuid;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

pub async fn migrate(owner_url: &str) -> Result<(), sqlx::Error> {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect(owner_url)
        .await?;
    MIGRATOR.run(&pool).await?;
    pool.close().await;
    Ok(())
}

/// A pool of connections as the URL's login.
pub async fn connect(database_url: &str, max_connections: u32) -> Result<PgPool, sqlx::Error> {
    let options = PgConnectOptions::from_str(database_url)?;
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await
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

/// `begin` and the tenant as one simple-protocol message; a UUID's text needs no quoting.
/// `set_config(.., true)` lasts until the transaction ends, so the tenant never carries over
/// to the connection's next user.
fn with_tenant(begin: &str, tenant: Uuid) -> String {
    format!("{begin}; select set_config('app.tenant_id', '{tenant}', true)")
}
