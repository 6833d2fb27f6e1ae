//! What the route tests share: a fresh migrated database each, and signed-in callers (a
//! credentials row and a real session, so each token passes the same admission as in
//! production).
use aggregates::Role;
use auth::{Identity, IdentityPolicy, TokenKeys};
use sqlx::{Connection, Executor, PgConnection, PgPool};
use uuid::Uuid;

const DEFAULT_URL: &str = "postgres://b2b:b2b@127.0.0.1:55432/b2b";

/// A database of one test: its owner's pool (seeds rows past row-level security) and a pool of
/// the application role, as the binary connects.
pub struct Database {
    pub admin_url: String,
    pub name: String,
    pub owner: PgPool,
    pub app_pool: PgPool,
}

pub async fn create_database(prefix: &str) -> Database {
    let admin_url = std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_URL.into());
    let name = format!("{prefix}_{}", Uuid::new_v4().simple());
    let mut admin = PgConnection::connect(&admin_url)
        .await
        .expect("stack is up");
    admin
        .execute(format!(r#"create database "{name}""#).as_str())
        .await
        .unwrap();
    let url = with_database(&admin_url, &name);
    event_store::db::migrate(&url).await.unwrap();
    let owner = PgPool::connect(&url).await.unwrap();
    let app_pool = event_store::db::connect(&url, Some("b2b_app"), 5)
        .await
        .unwrap();
    Database {
        admin_url,
        name,
        owner,
        app_pool,
    }
}

/// `url` with its database name replaced, query parameters kept.
fn with_database(url: &str, db_name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let (server, _) = base.rsplit_once('/').expect("a database URL has a path");
    match query {
        Some(q) => format!("{server}/{db_name}?{q}"),
        None => format!("{server}/{db_name}"),
    }
}

pub async fn drop_database(admin_url: &str, name: &str, pools: [PgPool; 2]) {
    for pool in pools {
        pool.close().await;
    }
    let mut admin = PgConnection::connect(admin_url).await.unwrap();
    let drop = format!(r#"drop database "{name}" with (force)"#);
    admin.execute(drop.as_str()).await.unwrap();
}

pub fn identity(app_pool: &PgPool, secret: &[u8]) -> Identity {
    let keys = TokenKeys::new(secret, chrono::Duration::minutes(5));
    Identity::new(app_pool.clone(), keys, IdentityPolicy::default())
}

/// An access token of a new session of `user`, created (with its tenant) if need be.
pub async fn sign_in_as(
    owner: &PgPool,
    identity: &Identity,
    (tenant, slug): (Uuid, &str),
    (user, email): (Uuid, &str),
    roles: &[Role],
    account: Option<Uuid>,
) -> String {
    sqlx::query("insert into tenants (id, slug, name) values ($1, $2, $2) on conflict do nothing")
        .bind(tenant)
        .bind(slug)
        .execute(owner)
        .await
        .unwrap();
    let roles: Vec<String> = roles.iter().map(|role| format!("{role:?}")).collect();
    sqlx::query(
        "insert into user_credentials (user_id, tenant_id, email, roles, account_id) \
         values ($1, $2, $3, $4, $5) \
         on conflict (user_id) do update set roles = excluded.roles, \
             account_id = excluded.account_id",
    )
    .bind(user)
    .bind(tenant)
    .bind(email)
    .bind(roles)
    .bind(account)
    .execute(owner)
    .await
    .unwrap();
    identity.open_session(user).await.unwrap().access_token
}
