//! What the test suites share: a fresh database per test on the server `DATABASE_OWNER_URL`
//! names, dropped when the test ends, whether it passed or panicked, and the URLs of the
//! services' logins for it (`DATABASE_URL`, `WORKER_DATABASE_URL`).
use sqlx::{Connection, Executor, PgConnection};
use uuid::Uuid;

/// The local stack's logins (`deploy/local/env.sh`), for a shell that did not source it.
const LOCAL_OWNER: &str = "postgres://b2b:b2b@127.0.0.1:55432/b2b";
const LOCAL_API: &str = "postgres://b2b_api:b2b_api@127.0.0.1:55432/b2b";
const LOCAL_WORKER: &str = "postgres://b2b_worker:b2b_worker@127.0.0.1:55432/b2b";

/// A database of one test. Dropping it drops the database, ending any session still in it.
#[derive(Debug)]
pub struct TestDatabase {
    /// `{prefix}_{a new uuid}`.
    pub name: String,
    /// The owner's URL (a superuser on the local stack) with this database's name (query
    /// parameters kept).
    pub url: String,
    /// The APIs' login (`b2b_api`) for this database.
    pub api_url: String,
    /// The relay's and projector's login (`b2b_worker`) for this database.
    pub worker_url: String,
    /// Where `create database` and `drop database` are sent.
    server_url: String,
}

impl TestDatabase {
    /// A new, empty database named `{prefix}_{a new uuid}`.
    pub async fn create(prefix: &str) -> Self {
        let server_url = env_or("DATABASE_OWNER_URL", LOCAL_OWNER);
        let name = format!("{prefix}_{}", Uuid::new_v4().simple());
        let mut server = PgConnection::connect(&server_url)
            .await
            .expect("reach Postgres: is the local stack up (`make stack`)?");
        server
            .execute(format!(r#"create database "{name}""#).as_str())
            .await
            .expect("create the test database");
        server.close().await.expect("close the server connection");
        Self {
            url: with_database(&server_url, &name),
            api_url: with_database(&env_or("DATABASE_URL", LOCAL_API), &name),
            worker_url: with_database(&env_or("WORKER_DATABASE_URL", LOCAL_WORKER), &name),
            name,
            server_url,
        }
    }

    /// A new database with the project's migrations run, as `b2b migrate` leaves it.
    pub async fn migrated(prefix: &str) -> Self {
        let database = Self::create(prefix).await;
        event_store::db::migrate(&database.url)
            .await
            .expect("migrate the test database");
        database
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let server_url = std::mem::take(&mut self.server_url);
        let drop = format!(r#"drop database if exists "{}" with (force)"#, self.name);
        // Drop runs outside async code, and the test's own runtime may be this thread's: the
        // statement goes on a thread and runtime of its own, and the test waits for it.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let mut server = PgConnection::connect(&server_url).await?;
                server.execute(drop.as_str()).await?;
                server.close().await
            })?;
            Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) && !std::thread::panicking() {
            panic!(
                "could not drop the test database {}: {dropped:?}",
                self.name
            );
        }
    }
}

fn env_or(variable: &str, default: &str) -> String {
    std::env::var(variable).unwrap_or_else(|_| default.into())
}

/// `url` with its database name replaced, query parameters kept.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let (server, _) = base.rsplit_once('/').expect("a database URL has a path");
    match query {
        Some(q) => format!("{server}/{name}?{q}"),
        None => format!("{server}/{name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_name_is_replaced_and_the_query_kept() {
        assert_eq!(
            with_database("postgres://u:p@h:5/b2b?sslmode=disable", "t_1"),
            "postgres://u:p@h:5/t_1?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h/b2b", "t_1"), "postgres://h/t_1");
    }
}
