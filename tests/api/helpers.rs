// Shared by the test binaries and the benchmark; each uses a part of it.
#![allow(dead_code)]

use std::process::Stdio;
use std::time::Duration;

use reqwest::{Response, StatusCode};
use serde_json::{json, Value};
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use test_support::TestDatabase;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use uuid::Uuid;

pub const PASSWORD: &str = "correct horse battery staple";
/// The signing key every test process shares (32 bytes or more, as outside local).
pub const TEST_JWT_SECRET: &str = "test-suite-signing-key-0123456789abcdef";

/// One test's private slice of the stack: its own database and RabbitMQ name prefix.
pub struct TestStack {
    /// Dropped with the stack.
    pub database: TestDatabase,
    pub amqp_url: String,
    pub amqp_prefix: String,
    /// Superuser connection to the test database, for checking what was stored.
    pub db: PgPool,
}

impl TestStack {
    pub async fn new() -> Self {
        let stack = Self::unmigrated().await;
        stack.migrate().await;
        stack
    }

    /// A stack whose database is still empty (for tests of a migration on existing data).
    pub async fn unmigrated() -> Self {
        let database = TestDatabase::create("b2b_test").await;
        Self {
            db: PgPoolOptions::new()
                .max_connections(4)
                .connect(&database.url)
                .await
                .unwrap(),
            amqp_url: env("AMQP_URL", "amqp://b2b:b2b@127.0.0.1:55672/%2f"),
            amqp_prefix: format!("t{}", &database.name[9..21]),
            database,
        }
    }

    /// `b2b migrate`, as an operator runs it.
    pub async fn migrate(&self) {
        let status = self
            .command(&["migrate"])
            .stdout(Stdio::null())
            .status()
            .await
            .unwrap();
        assert!(status.success(), "b2b migrate failed");
    }

    /// `b2b <args>` configured for this test's database and broker names.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_b2b"));
        command
            .args(args)
            .env("DATABASE_URL", &self.database.api_url)
            .env("WORKER_DATABASE_URL", &self.database.worker_url)
            .env("DATABASE_OWNER_URL", &self.database.url)
            .env("AMQP_URL", &self.amqp_url)
            .env("AMQP_PREFIX", &self.amqp_prefix)
            .env("BIND_ADDR", "127.0.0.1:0")
            .env("METRICS_ADDR", "127.0.0.1:0")
            // `test` is not local: the process needs a key of its own, as in production.
            .env("APP_ENV", "test")
            .env("JWT_SECRET", TEST_JWT_SECRET)
            .env("PROJECTOR_PARTITIONS", "2")
            .env("RUST_LOG", "warn")
            // Timers read the test-settable clock (`test_clock`), and look often.
            .env("B2B_CLOCK", "adjustable")
            .env("TIMER_POLL_MS", "100")
            // Tests send bursts far above a person's pace; the rate-limit tests lower it.
            .env("RATE_LIMIT_PER_USER_PER_MINUTE", "1000000")
            .env("SIGN_IN_PER_ADDRESS_PER_MINUTE", "1000000")
            .kill_on_drop(true);
        command
    }

    /// Runs a short `b2b` command to its end: (succeeded, stdout, stderr).
    pub async fn b2b(&self, args: &[&str]) -> (bool, String, String) {
        let output = self.command(args).output().await.unwrap();
        (
            output.status.success(),
            String::from_utf8(output.stdout).unwrap(),
            String::from_utf8(output.stderr).unwrap(),
        )
    }

    /// Starts a long-running `b2b` process; for HTTP ones, waits until it listens.
    pub async fn spawn(&self, args: &[&str]) -> Process {
        self.spawn_with_env(args, &[]).await
    }

    /// `spawn` with extra environment variables.
    /// `b2b serve` with `/metrics` on a free loopback port it is told; returns the process
    /// and that address.
    pub async fn spawn_serve_with_metrics(&self) -> (Process, String) {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let address = format!("127.0.0.1:{port}");
        let server = self
            .spawn_with_env(&["serve"], &[("METRICS_ADDR", &address)])
            .await;
        (server, address)
    }

    pub async fn spawn_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Process {
        let mut command = self.command(args);
        command.envs(env.iter().copied());
        let serves_http = matches!(args[0], "serve" | "command-api" | "query-api");
        spawn_command(command, serves_http).await
    }

    /// Starts an HTTP server from a command built with [`TestStack::command`].
    pub async fn spawn_command(&self, command: Command) -> Process {
        spawn_command(command, true).await
    }

    pub async fn create_tenant(&self, slug: &str) -> Tenant {
        create_tenant_with(self.command(&[]), slug).await
    }

    /// Account events stored (tenant creation also stores the first admin's User event).
    pub async fn account_event_count(&self) -> i64 {
        sqlx::query_scalar("select count(*) from events where aggregate_type = 'Account'")
            .fetch_one(&self.db)
            .await
            .unwrap()
    }

    /// Waits until the relay has published every stored event.
    pub async fn wait_for_relay(&self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let pending = event_store::relay::backlog(&self.db).await.unwrap();
            if pending == 0 {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{pending} events still unpublished"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Creates tenant `slug` and its first TenantAdmin (`admin@<slug>.test`, [`PASSWORD`]) with
/// `b2b`, a command of the binary configured for the database it should go into.
pub async fn create_tenant_with(mut b2b: Command, slug: &str) -> Tenant {
    let email = format!("admin@{slug}.test");
    let output = b2b
        .args([
            "tenant",
            "create",
            "--slug",
            slug,
            "--name",
            &format!("{slug} Ltd"),
        ])
        .args(["--admin-email", &email, "--admin-password", PASSWORD])
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let created: Value = serde_json::from_slice(&output.stdout).unwrap();
    Tenant {
        slug: slug.to_owned(),
        email,
        id: created["tenant_id"].as_str().unwrap().parse().unwrap(),
    }
}

/// Polls `probe` until it returns `Some`, for what happens asynchronously (process managers,
/// timers, projections).
pub async fn eventually<T, F, Fut>(what: &str, probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    eventually_within(what, Duration::from_secs(30), probe).await
}

/// [`eventually`] with its own deadline, for work whose length grows with the data.
pub async fn eventually_within<T, F, Fut>(what: &str, limit: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub struct Tenant {
    pub slug: String,
    pub email: String,
    pub id: Uuid,
}

/// Spawns `command`; for an HTTP server, waits until it prints the address it listens on.
async fn spawn_command(mut command: Command, serves_http: bool) -> Process {
    let mut child = command.stdout(Stdio::piped()).spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut base_url = None;
    if serves_http {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("b2b printed its address")
            .unwrap()
            .expect("b2b exited before listening");
        base_url = Some(line.trim_start_matches("listening on ").to_owned());
    }
    Process { child, base_url }
}

pub struct Process {
    pub child: Child,
    pub base_url: Option<String>,
}

impl Process {
    pub fn url(&self) -> &str {
        self.base_url.as_deref().expect("an HTTP process")
    }

    /// SIGKILL: no chance to clean up, as in a crash.
    pub async fn kill(mut self) {
        self.child.kill().await.unwrap();
    }
}

/// A client of one running `b2b` HTTP process.
pub struct Api {
    pub base_url: String,
    pub http: reqwest::Client,
}

impl Api {
    pub fn new(process: &Process) -> Self {
        Self {
            base_url: process.url().to_owned(),
            http: reqwest::Client::new(),
        }
    }

    /// A client whose connections come from `address` (any of 127.0.0.0/8 reaches the
    /// server), as another machine's would.
    pub fn from_address(process: &Process, address: &str) -> Self {
        let address: std::net::IpAddr = address.parse().unwrap();
        Self {
            base_url: process.url().to_owned(),
            http: reqwest::Client::builder()
                .local_address(address)
                .build()
                .unwrap(),
        }
    }

    pub async fn login(&self, tenant: &Tenant) -> String {
        let response = self
            .http
            .post(format!("{}/api/v1/auth/login", self.base_url))
            .json(&json!({ "tenant": tenant.slug, "email": tenant.email, "password": PASSWORD }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }

    pub fn command(&self, token: &str, collection: &str, id: Uuid) -> reqwest::RequestBuilder {
        self.http
            .post(format!("{}/api/v1/{collection}/{id}", self.base_url))
            .bearer_auth(token)
    }

    /// Sends an account command that must succeed; returns the new version.
    pub async fn ok(&self, token: &str, id: Uuid, body: Value) -> u64 {
        self.ok_in(token, "accounts", id, body).await
    }

    /// Sends a command to `collection` that must succeed; returns the new version.
    pub async fn ok_in(&self, token: &str, collection: &str, id: Uuid, body: Value) -> u64 {
        let response = self
            .command(token, collection, id)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let reply: Value = response.json().await.unwrap();
        assert_eq!(status, StatusCode::OK, "{body} → {reply}");
        assert_eq!(reply["id"], json!(id.to_string()));
        reply["version"].as_u64().unwrap()
    }

    /// Signs in as any user of `tenant`.
    pub async fn login_as(&self, tenant: &Tenant, email: &str, password: &str) -> Response {
        self.http
            .post(format!("{}/api/v1/auth/login", self.base_url))
            .json(&json!({ "tenant": tenant.slug, "email": email, "password": password }))
            .send()
            .await
            .unwrap()
    }

    /// Registers a user with a password (as a TenantAdmin) and returns their id.
    pub async fn register(
        &self,
        admin: &str,
        email: &str,
        roles: Value,
        account_id: Option<Uuid>,
    ) -> Uuid {
        let id = Uuid::new_v4();
        let body = json!({
            "type": "RegisterUser", "email": email, "display_name": email,
            "roles": roles, "account_id": account_id, "password": PASSWORD
        });
        self.ok_in(admin, "users", id, body).await;
        id
    }

    /// Signs in as a user registered by [`Api::register`]: the whole token pair.
    pub async fn sign_in(&self, tenant: &Tenant, email: &str) -> Value {
        let response = self.login_as(tenant, email, PASSWORD).await;
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }

    pub async fn refresh(&self, refresh_token: &Value) -> Response {
        self.http
            .post(format!("{}/api/v1/auth/refresh", self.base_url))
            .json(&json!({ "refresh_token": refresh_token }))
            .send()
            .await
            .unwrap()
    }

    pub async fn me(&self, token: &str) -> Response {
        self.http
            .get(format!("{}/api/v1/auth/me", self.base_url))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// `POST /graphql` whatever the answer's status.
    pub async fn graphql_response(&self, token: &str, query: &str) -> Response {
        self.http
            .post(format!("{}/graphql", self.base_url))
            .bearer_auth(token)
            .json(&json!({ "query": query }))
            .send()
            .await
            .unwrap()
    }

    pub async fn graphql(
        &self,
        token: &str,
        query: &str,
        await_version: Option<(Uuid, u64)>,
    ) -> Value {
        let mut request = self
            .http
            .post(format!("{}/graphql", self.base_url))
            .bearer_auth(token)
            .json(&json!({ "query": query }));
        if let Some((id, version)) = await_version {
            request = request.header("X-Await-Version", format!("{id}@{version}"));
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }
}

/// Every event stored, whoever caused it.
pub async fn event_count(db: &PgPool) -> i64 {
    sqlx::query_scalar("select count(*) from events")
        .fetch_one(db)
        .await
        .unwrap()
}

pub fn open_account(name: &str) -> Value {
    json!({
        "type": "OpenAccount",
        "name": name,
        "legal_name": format!("{name} GmbH"),
        "country": "DE",
        "billing_email": "ap@example.test",
        "currency": "EUR",
        "tier": "Gold"
    })
}

/// Asserts an `application/problem+json` reply with `status` and returns its body.
pub async fn problem(response: Response, status: StatusCode) -> Value {
    assert_eq!(response.status(), status);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(content_type, "application/problem+json");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], json!(status.as_u16()));
    assert!(
        body["type"].is_string() && body["title"].is_string() && body["detail"].is_string(),
        "{body}"
    );
    body
}

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}
