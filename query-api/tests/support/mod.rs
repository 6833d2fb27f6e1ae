//! What the route tests share: a fresh migrated database each, and signed-in callers (a
//! credentials row and a real session, so each token passes the same admission as in
//! production).
use aggregates::Role;
use auth::{Identity, IdentityPolicy, TokenKeys};
use sqlx::PgPool;
use test_support::TestDatabase;
use uuid::Uuid;

/// A database of one test: its owner's pool (seeds rows past row-level security) and a pool of
/// the APIs' login (`b2b_api`), as the binary connects.
pub struct Database {
    pub database: TestDatabase,
    pub owner: PgPool,
    pub app_pool: PgPool,
}

pub async fn create_database(prefix: &str) -> Database {
    let database = TestDatabase::migrated(prefix).await;
    let owner = PgPool::connect(&database.url).await.unwrap();
    let app_pool = event_store::db::connect(&database.api_url, 5)
        .await
        .unwrap();
    Database {
        database,
        owner,
        app_pool,
    }
}

/// Closes the test's pools, then drops its database.
pub async fn drop_database(database: TestDatabase, pools: [PgPool; 2]) {
    for pool in pools {
        pool.close().await;
    }
    drop(database);
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
    identity
        .open_session(tenant, user)
        .await
        .unwrap()
        .access_token
}
