//! Configuration: every setting is an environment variable (or the flag of the same name),
//! declared once in [`Settings`] with its default, so `b2b --help` lists them all; the defaults
//! work against the local stack (`deploy/local/stack.sh`). [`Config::from_settings`] checks
//! the rules between them. Secrets (signing keys, passwords inside URLs) are `secrecy` types:
//! `Debug` and logs show them redacted, and the code reads them only through `expose_secret`.
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::builder::RangedU64ValueParser;
use event_store::audit::keys::{self, SigningKey};
use secrecy::{ExposeSecret, SecretSlice, SecretString};

const LOCAL_JWT_SECRET: &str = "local-development-only-signing-key-change-me";
/// The audit checkpoints' Ed25519 seed for `APP_ENV=local` and `test` only: published here, so
/// checkpoints signed with it prove nothing and no other deployment may use it.
const LOCAL_AUDIT_SEED: [u8; 32] = *b"b2b-local-only-audit-signing-key";

/// Whole numbers of at least 1: zero would silently switch a limit or a lifetime off.
fn at_least_one() -> RangedU64ValueParser<u64> {
    RangedU64ValueParser::new().range(1..)
}

fn default_identity() -> auth::IdentityPolicy {
    auth::IdentityPolicy::default()
}

/// The settings as given. Every one is global, so each subcommand's `--help` lists them too;
/// values of the secret ones are never printed there.
#[derive(clap::Args, Debug)]
#[command(next_help_heading = "Configuration (environment variables; flags of the same name win)")]
pub struct Settings {
    /// The command and query APIs' Postgres login (b2b_api)
    #[arg(
        long,
        global = true,
        env = "DATABASE_URL",
        hide_env_values = true,
        default_value = "postgres://b2b_api:b2b_api@127.0.0.1:55432/b2b"
    )]
    database_url: SecretUrl,
    /// The relay's and projector's Postgres login (b2b_worker)
    #[arg(
        long,
        global = true,
        env = "WORKER_DATABASE_URL",
        hide_env_values = true,
        default_value = "postgres://b2b_worker:b2b_worker@127.0.0.1:55432/b2b"
    )]
    worker_database_url: SecretUrl,
    /// A streaming standby the query API reads from (as b2b_api); unset: the primary
    #[arg(long, global = true, env = "DATABASE_READ_URL", hide_env_values = true)]
    database_read_url: Option<SecretUrl>,
    /// The schema owner: `b2b migrate` and the operator commands
    #[arg(
        long,
        global = true,
        env = "DATABASE_OWNER_URL",
        hide_env_values = true,
        default_value = "postgres://b2b:b2b@127.0.0.1:55432/b2b"
    )]
    database_owner_url: SecretUrl,
    /// RabbitMQ
    #[arg(
        long,
        global = true,
        env = "AMQP_URL",
        hide_env_values = true,
        default_value = "amqp://b2b:b2b@127.0.0.1:55672/%2f"
    )]
    amqp_url: SecretUrl,
    /// Prefix of every RabbitMQ exchange and queue name
    #[arg(long, global = true, env = "AMQP_PREFIX", default_value = "b2b")]
    amqp_prefix: String,
    /// Queues per consumer group (fixed per deployment)
    #[arg(long, global = true, env = "PROJECTOR_PARTITIONS", default_value_t = 4)]
    projector_partitions: u16,
    /// HTTP address (`:0` picks a free port; the address is printed)
    #[arg(
        long,
        global = true,
        env = "BIND_ADDR",
        default_value = "127.0.0.1:8080"
    )]
    bind_addr: String,
    /// Where `/metrics` is served, apart from the APIs
    #[arg(
        long,
        global = true,
        env = "METRICS_ADDR",
        default_value = "127.0.0.1:9464"
    )]
    metrics_addr: String,
    /// Access-token signing key, at least 32 bytes [default: built-in key, only with APP_ENV=local]
    #[arg(long, global = true, env = "JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<SecretString>,
    /// A file holding JWT_SECRET
    #[arg(long, global = true, env = "JWT_SECRET_FILE")]
    jwt_secret_file: Option<PathBuf>,
    /// Access-token lifetime (capped at 900)
    #[arg(
        long,
        global = true,
        env = "ACCESS_TOKEN_TTL_SECONDS",
        default_value_t = 900
    )]
    access_token_ttl_seconds: u64,
    /// A session's absolute lifetime
    #[arg(long, global = true, env = "SESSION_LIFETIME_SECONDS", value_parser = at_least_one(),
          default_value_t = default_identity().session_lifetime.as_secs())]
    session_lifetime_seconds: u64,
    /// Failed sign-ins from one source, within the lock period, that lock that source
    #[arg(long, global = true, env = "SIGN_IN_MAX_FAILURES", value_parser = at_least_one(),
          default_value_t = u64::from(default_identity().max_sign_in_failures))]
    sign_in_max_failures: u64,
    /// How long a sign-in lock lasts
    #[arg(long, global = true, env = "SIGN_IN_LOCK_SECONDS", value_parser = at_least_one(),
          default_value_t = default_identity().lock_for.as_secs())]
    sign_in_lock_seconds: u64,
    /// Sign-in attempts one client address may make per minute
    #[arg(long, global = true, env = "SIGN_IN_PER_ADDRESS_PER_MINUTE", value_parser = at_least_one(),
          default_value_t = u64::from(default_identity().sign_ins_per_address_per_minute))]
    sign_in_per_address_per_minute: u64,
    /// Comma-separated IP addresses of load balancers whose X-Forwarded-For names the client
    #[arg(long, global = true, env = "TRUSTED_PROXIES", default_value = "")]
    trusted_proxies: String,
    /// Requests per clock minute one user may make over both APIs
    #[arg(long, global = true, env = "RATE_LIMIT_PER_USER_PER_MINUTE", value_parser = at_least_one(),
          default_value_t = u64::from(default_identity().requests_per_user_per_minute))]
    rate_limit_per_user_per_minute: u64,
    /// How long X-Await-Version waits before STALE_READ
    #[arg(
        long,
        global = true,
        env = "AWAIT_VERSION_TIMEOUT_MS",
        default_value_t = 5000
    )]
    await_version_timeout_ms: u64,
    /// Requests one query-API process lets wait for X-Await-Version at once
    #[arg(long, global = true, env = "AWAIT_VERSION_MAX_WAITERS", value_parser = at_least_one(),
          default_value_t = 1000)]
    await_version_max_waiters: u64,
    /// GraphQL subscriptions one user (or API key) may hold at once, over all connections
    #[arg(long, global = true, env = "SUBSCRIPTIONS_PER_USER", value_parser = at_least_one(),
          default_value_t = 20)]
    subscriptions_per_user: u64,
    /// GraphQL subscriptions one query-API process serves at once
    #[arg(long, global = true, env = "SUBSCRIPTIONS_MAX", value_parser = at_least_one(),
          default_value_t = 10000)]
    subscriptions_max: u64,
    /// Changes that may wait for one subscription; a client that falls further behind is dropped
    #[arg(long, global = true, env = "SUBSCRIPTION_BUFFER", value_parser = at_least_one(),
          default_value_t = 256)]
    subscription_buffer: u64,
    /// How often the timer worker looks for due timers
    #[arg(long, global = true, env = "TIMER_POLL_MS", default_value_t = 1000)]
    timer_poll_ms: u64,
    /// Per aggregate type, how many folded events the stream cache may hold
    #[arg(long, global = true, env = "AGGREGATE_CACHE_EVENTS",
          default_value_t = event_store::streams::DEFAULT_CACHE_WEIGHT)]
    aggregate_cache_events: u64,
    /// How long the active relay keeps its lease without renewing it
    #[arg(long, global = true, env = "RELAY_LEASE_MS", value_parser = at_least_one(),
          default_value_t = 5000)]
    relay_lease_ms: u64,
    /// How often the command API deletes Idempotency-Key receipts past their 24 hours
    #[arg(long, global = true, env = "IDEMPOTENCY_SWEEP_SECONDS", value_parser = at_least_one(),
          default_value_t = 600)]
    idempotency_sweep_seconds: u64,
    /// `1` honours X-Test-Fault crash points (only with APP_ENV=test)
    #[arg(long, global = true, env = "B2B_TEST_FAULTS", default_value = "0",
          value_parser = ["0", "1"])]
    b2b_test_faults: String,
    /// A worker (by its name in logs, e.g. `timer worker`) that panics 1 s after it starts
    /// (crash tests; only with B2B_TEST_FAULTS=1)
    #[arg(long, global = true, env = "B2B_TEST_PANIC_WORKER")]
    b2b_test_panic_worker: Option<String>,
    /// `system`, or `adjustable` (tests only: time moved through the test_clock table)
    #[arg(long, global = true, env = "B2B_CLOCK", default_value = "system")]
    b2b_clock: String,
    /// The Ed25519 key that signs audit checkpoints (PKCS#8 PEM or base64 seed)
    /// [default: built-in key, only with APP_ENV=local or test]
    #[arg(long, global = true, env = "AUDIT_SIGNING_KEY", hide_env_values = true)]
    audit_signing_key: Option<SecretString>,
    /// A file holding AUDIT_SIGNING_KEY
    #[arg(long, global = true, env = "AUDIT_SIGNING_KEY_FILE")]
    audit_signing_key_file: Option<PathBuf>,
    /// How often the checkpoint worker signs each tenant's new events
    #[arg(long, global = true, env = "AUDIT_CHECKPOINT_SECONDS", value_parser = at_least_one(),
          default_value_t = 60)]
    audit_checkpoint_seconds: u64,
    /// How long a webhook delivery is retried before its endpoint is disabled and its
    /// deliveries parked
    #[arg(long, global = true, env = "WEBHOOK_RETRY_WINDOW_SECONDS", value_parser = at_least_one(),
          default_value_t = webhooks::RetrySchedule::default().window.as_secs())]
    webhook_retry_window_seconds: u64,
    /// The pause after a webhook delivery's first failed attempt (doubling after each further
    /// one)
    #[arg(long, global = true, env = "WEBHOOK_RETRY_FIRST_MS", value_parser = at_least_one(),
          default_value_t = 5000)]
    webhook_retry_first_ms: u64,
    /// The longest pause between a webhook delivery's attempts
    #[arg(long, global = true, env = "WEBHOOK_RETRY_MAX_SECONDS", value_parser = at_least_one(),
          default_value_t = 3600)]
    webhook_retry_max_seconds: u64,
    /// How long one webhook attempt may take (connect and answer)
    #[arg(long, global = true, env = "WEBHOOK_TIMEOUT_MS", value_parser = at_least_one(),
          default_value_t = 10000)]
    webhook_timeout_ms: u64,
    /// How often the webhook delivery worker looks for due deliveries when it found none
    #[arg(long, global = true, env = "WEBHOOK_POLL_MS", value_parser = at_least_one(),
          default_value_t = 250)]
    webhook_poll_ms: u64,
    /// `local`, `test`, or anything else for a real deployment
    #[arg(long, global = true, env = "APP_ENV", default_value = "production")]
    app_env: String,
    /// Comma-separated browser origins allowed to call the APIs (CORS)
    #[arg(long, global = true, env = "CORS_ALLOWED_ORIGINS", default_value = "")]
    cors_allowed_origins: String,
    /// On SIGTERM or a failed worker, how long an HTTP process answers 503 on /health/ready
    /// (while still serving) before it stops taking requests, so load balancers stop sending
    /// them first (at most 5000)
    #[arg(long, global = true, env = "SHUTDOWN_DRAIN_MS", default_value_t = 1000)]
    shutdown_drain_ms: u64,
    /// Where tracing spans are exported over OTLP/HTTP (protobuf), e.g. `http://collector:4318`
    /// (`/v1/traces` is appended); unset: no exporter
    #[arg(long, global = true, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otel_exporter_otlp_endpoint: Option<url::Url>,
    /// The `service.name` exported spans carry
    #[arg(long, global = true, env = "OTEL_SERVICE_NAME", default_value = "b2b")]
    pub otel_service_name: String,
    /// Log filter (and filter of the exported spans)
    #[arg(long, global = true, env = "RUST_LOG", default_value = "info")]
    pub rust_log: String,
    /// `json`, or `pretty` for people
    #[arg(long, global = true, env = "LOG_FORMAT", default_value = "json",
          value_parser = ["json", "pretty"])]
    pub log_format: String,
}

/// The configuration a process runs with: [`Settings`] checked against each other.
#[derive(Debug)]
pub struct Config {
    /// The APIs' login (`b2b_api`): no owner, no superuser, row-level security applies.
    pub database_url: SecretUrl,
    /// The relay's and projector's login (`b2b_worker`): as the APIs', plus every tenant's
    /// events and timers.
    pub worker_database_url: SecretUrl,
    /// A streaming standby of the primary that the query API's reads run on, when set.
    pub read_database_url: Option<SecretUrl>,
    /// The schema owner: migrations and the operator commands.
    pub owner_database_url: SecretUrl,
    pub amqp_url: SecretUrl,
    /// Prefix of every RabbitMQ exchange and queue name.
    pub amqp_prefix: String,
    /// Queues per consumer group; fixed per deployment.
    pub partitions: u16,
    pub bind_addr: String,
    /// Where `/metrics` is served: apart from the APIs, loopback by default.
    pub metrics_addr: String,
    pub jwt_secret: SecretSlice<u8>,
    pub access_token_ttl: Duration,
    pub await_timeout: Duration,
    /// Requests that may wait for `X-Await-Version` at once; beyond, 503.
    pub await_max_waiters: usize,
    /// Caps of the GraphQL subscriptions.
    pub subscriptions: query_api::subscriptions::SubscriptionLimits,
    /// Load balancers whose `X-Forwarded-For` names the client; none by default.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Browser origins allowed to call the APIs (CORS); none by default.
    pub cors_allowed_origins: Vec<String>,
    /// `system`, or `adjustable` (tests only: time moved through the `test_clock` table).
    pub clock: String,
    /// `local`, `test`, or anything else (the default, `production`) for a real deployment.
    pub app_env: String,
    /// How often the timer worker looks for due timers.
    pub timer_poll_interval: Duration,
    /// Session lifetime, sign-in lockout and the per-user rate limit.
    pub identity: auth::IdentityPolicy,
    /// Stream cache size per aggregate type.
    pub bus: event_store::BusOptions,
    /// How long a relay leader keeps the lease without renewing it.
    pub relay_lease: Duration,
    /// Honour `X-Test-Fault` crash points; only with `APP_ENV=test`.
    pub test_faults: bool,
    /// The worker that panics on purpose (crash tests); only with `test_faults`.
    pub test_panic_worker: Option<String>,
    /// How often the command API removes Idempotency-Key receipts past their 24 hours.
    pub receipt_sweep: Duration,
    /// Signs audit checkpoints; none outside `APP_ENV=local`/`test` unless one is given.
    /// Not in a `SecretBox`: ed25519-dalek's key already zeroizes itself on drop and its
    /// `Debug` shows only the public half.
    pub audit_signing_key: Option<SigningKey>,
    /// How often the checkpoint worker signs each tenant's new history.
    pub audit_checkpoint_interval: Duration,
    /// How long an HTTP process reports itself unready, still serving, before it stops.
    pub shutdown_drain: Duration,
    /// The webhook delivery worker's timing; its reach follows `app_env`.
    pub webhooks: webhooks::SenderConfig,
}

/// The longest drain: the whole stop must fit in 10 s.
const MAX_SHUTDOWN_DRAIN_MS: u64 = 5000;

impl Config {
    pub fn from_settings(settings: Settings) -> anyhow::Result<Self> {
        let app_env = settings.app_env.clone();
        let test_faults = settings.b2b_test_faults == "1";
        if test_faults && app_env != "test" {
            bail!("B2B_TEST_FAULTS is refused outside APP_ENV=test");
        }
        if settings.b2b_test_panic_worker.is_some() && !test_faults {
            bail!("B2B_TEST_PANIC_WORKER needs B2B_TEST_FAULTS=1");
        }
        if settings.shutdown_drain_ms > MAX_SHUTDOWN_DRAIN_MS {
            bail!("SHUTDOWN_DRAIN_MS must be at most {MAX_SHUTDOWN_DRAIN_MS}");
        }
        Ok(Self {
            jwt_secret: jwt_secret(&settings, &app_env)?,
            audit_signing_key: audit_signing_key(&settings, &app_env)?,
            identity: identity_policy(&settings)?,
            trusted_proxies: comma_separated(&settings.trusted_proxies)
                .map(|address| {
                    address
                        .parse()
                        .context("TRUSTED_PROXIES lists IP addresses")
                })
                .collect::<anyhow::Result<_>>()?,
            cors_allowed_origins: comma_separated(&settings.cors_allowed_origins)
                .map(str::to_owned)
                .collect(),
            database_url: settings.database_url,
            worker_database_url: settings.worker_database_url,
            read_database_url: settings.database_read_url,
            owner_database_url: settings.database_owner_url,
            amqp_url: settings.amqp_url,
            amqp_prefix: settings.amqp_prefix,
            partitions: settings.projector_partitions,
            bind_addr: settings.bind_addr,
            metrics_addr: settings.metrics_addr,
            access_token_ttl: Duration::from_secs(settings.access_token_ttl_seconds.min(900)),
            await_timeout: Duration::from_millis(settings.await_version_timeout_ms),
            await_max_waiters: usize::try_from(settings.await_version_max_waiters)?,
            subscriptions: query_api::subscriptions::SubscriptionLimits {
                per_user: usize::try_from(settings.subscriptions_per_user)?,
                per_process: usize::try_from(settings.subscriptions_max)?,
                buffer: usize::try_from(settings.subscription_buffer)?,
            },
            clock: settings.b2b_clock,
            timer_poll_interval: Duration::from_millis(settings.timer_poll_ms),
            bus: event_store::BusOptions {
                cache_weight: settings.aggregate_cache_events,
            },
            relay_lease: Duration::from_millis(settings.relay_lease_ms),
            test_faults,
            test_panic_worker: settings.b2b_test_panic_worker,
            receipt_sweep: Duration::from_secs(settings.idempotency_sweep_seconds),
            audit_checkpoint_interval: Duration::from_secs(settings.audit_checkpoint_seconds),
            shutdown_drain: Duration::from_millis(settings.shutdown_drain_ms),
            webhooks: webhooks::SenderConfig {
                poll: Duration::from_millis(settings.webhook_poll_ms),
                timeout: Duration::from_millis(settings.webhook_timeout_ms),
                retry: webhooks::RetrySchedule {
                    first: Duration::from_millis(settings.webhook_retry_first_ms),
                    max: Duration::from_secs(settings.webhook_retry_max_seconds),
                    window: Duration::from_secs(settings.webhook_retry_window_seconds),
                },
                reach: webhooks::Reach::for_app_env(&app_env),
                ..webhooks::SenderConfig::default()
            },
            app_env,
        })
    }

    /// The checkpoint signing key, which every process that signs checkpoints needs.
    pub fn audit_key(&self) -> anyhow::Result<&SigningKey> {
        self.audit_signing_key.as_ref().with_context(|| {
            format!(
                "AUDIT_SIGNING_KEY or AUDIT_SIGNING_KEY_FILE must be set outside APP_ENV=local \
                     or test (APP_ENV is `{}`): the audit checkpoint worker (`b2b serve`, `b2b \
                     relay`) and `b2b audit checkpoint` sign with it",
                self.app_env
            )
        })
    }
}

fn comma_separated(list: &str) -> impl Iterator<Item = &str> {
    list.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
}

fn identity_policy(settings: &Settings) -> anyhow::Result<auth::IdentityPolicy> {
    let count = |name: &str, value: u64| {
        u32::try_from(value).with_context(|| format!("{name} is too large"))
    };
    Ok(auth::IdentityPolicy {
        session_lifetime: Duration::from_secs(settings.session_lifetime_seconds),
        max_sign_in_failures: count("SIGN_IN_MAX_FAILURES", settings.sign_in_max_failures)?,
        lock_for: Duration::from_secs(settings.sign_in_lock_seconds),
        requests_per_user_per_minute: count(
            "RATE_LIMIT_PER_USER_PER_MINUTE",
            settings.rate_limit_per_user_per_minute,
        )?,
        sign_ins_per_address_per_minute: count(
            "SIGN_IN_PER_ADDRESS_PER_MINUTE",
            settings.sign_in_per_address_per_minute,
        )?,
    })
}

/// Shorter keys can be brute-forced offline from one captured token (HS256).
const MIN_JWT_SECRET_BYTES: usize = 32;

/// `JWT_SECRET`, or the contents of `JWT_SECRET_FILE`, at least 32 bytes. The built-in key is
/// only for `APP_ENV=local`: anywhere else it, a short key or none refuses to start.
fn jwt_secret(settings: &Settings, app_env: &str) -> anyhow::Result<SecretSlice<u8>> {
    let local = app_env == "local";
    let secret: SecretSlice<u8> = if let Some(secret) = &settings.jwt_secret {
        secret.expose_secret().as_bytes().to_vec().into()
    } else if let Some(path) = &settings.jwt_secret_file {
        let secret = SecretSlice::from(
            std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
        );
        secret.expose_secret().trim_ascii().to_vec().into()
    } else if local {
        return Ok(LOCAL_JWT_SECRET.as_bytes().to_vec().into());
    } else {
        bail!("JWT_SECRET or JWT_SECRET_FILE must be set outside APP_ENV=local (APP_ENV is `{app_env}`)");
    };
    if secret.expose_secret().len() < MIN_JWT_SECRET_BYTES {
        bail!("the signing key (JWT_SECRET) must be at least {MIN_JWT_SECRET_BYTES} bytes");
    }
    if secret.expose_secret() == LOCAL_JWT_SECRET.as_bytes() && !local {
        bail!("the built-in development signing key is refused outside APP_ENV=local");
    }
    Ok(secret)
}

/// `AUDIT_SIGNING_KEY`, or the contents of `AUDIT_SIGNING_KEY_FILE`: a PKCS#8 PEM Ed25519 key or
/// a 32-byte seed in base64. Local and test runs fall back to the built-in key, which anywhere
/// else is refused; elsewhere no key is no checkpoint worker (see `Config::audit_key`).
fn audit_signing_key(settings: &Settings, app_env: &str) -> anyhow::Result<Option<SigningKey>> {
    let built_in_allowed = matches!(app_env, "local" | "test");
    let text: SecretString = if let Some(text) = &settings.audit_signing_key {
        text.clone()
    } else if let Some(path) = &settings.audit_signing_key_file {
        std::fs::read_to_string(path)
            .with_context(|| format!("reading {}", path.display()))?
            .into()
    } else if built_in_allowed {
        return Ok(Some(SigningKey::from_bytes(&LOCAL_AUDIT_SEED)));
    } else {
        return Ok(None);
    };
    let key = keys::signing_key(text.expose_secret()).context("AUDIT_SIGNING_KEY")?;
    if key.to_bytes() == LOCAL_AUDIT_SEED && !built_in_allowed {
        bail!("the built-in development audit key is refused outside APP_ENV=local or test");
    }
    Ok(Some(key))
}

/// A connection URL that may hold a password. Its `Debug` shows the URL with the password
/// replaced, so a configuration dump or an error names the host and login but no secret.
#[derive(Clone)]
pub struct SecretUrl(SecretString);

impl SecretUrl {
    /// The URL without its password, for messages.
    pub fn redacted(&self) -> String {
        match url::Url::parse(self.0.expose_secret()) {
            Ok(mut url) if url.password().is_some() => {
                let _ = url.set_password(Some("REDACTED"));
                url.to_string()
            }
            Ok(url) => url.to_string(),
            Err(_) => "[unparsable URL, REDACTED]".to_owned(),
        }
    }
}

impl ExposeSecret<str> for SecretUrl {
    fn expose_secret(&self) -> &str {
        self.0.expose_secret()
    }
}

impl FromStr for SecretUrl {
    type Err = std::convert::Infallible;

    fn from_str(url: &str) -> Result<Self, Self::Err> {
        Ok(Self(url.into()))
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Only {
        #[command(flatten)]
        settings: Settings,
    }

    fn config(args: &[&str]) -> Config {
        let only = Only::try_parse_from(std::iter::once("b2b").chain(args.iter().copied()))
            .expect("valid arguments");
        Config::from_settings(only.settings).expect("a valid configuration")
    }

    #[test]
    fn debug_output_holds_no_secret() {
        let jwt = "jwt-secret-for-the-debug-test-0123456789";
        let seed = "c2VlZC1vZi10aGUtZGVidWctdGVzdC0wMTIzNDU2Nzg=";
        let config = config(&[
            "--app-env=production",
            &format!("--jwt-secret={jwt}"),
            &format!("--audit-signing-key={seed}"),
            "--database-url=postgres://api:api-password-1@db.example:5432/b2b",
            "--worker-database-url=postgres://w:worker-password-2@db.example/b2b",
            "--database-owner-url=postgres://o:owner-password-3@db.example/b2b",
            "--amqp-url=amqp://b2b:broker-password-4@mq.example:5672/%2f",
        ]);
        let debug = format!("{config:?}");
        for secret in [
            jwt,
            seed,
            "api-password-1",
            "worker-password-2",
            "owner-password-3",
            "broker-password-4",
        ] {
            assert!(!debug.contains(secret), "{secret} shows in {debug}");
        }
        // What is not secret still shows, so the dump is useful.
        assert!(
            debug.contains("postgres://api:REDACTED@db.example:5432/b2b"),
            "{debug}"
        );
        assert!(debug.contains("mq.example"), "{debug}");
        let key = config.audit_key().unwrap().to_bytes();
        assert!(!debug.contains(&format!("{key:?}")), "{debug}");
        assert_eq!(config.jwt_secret.expose_secret(), jwt.as_bytes());
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        // The declared default: the environment (`make test` exports the stack's own
        // DATABASE_URL, whose port may differ) would win over it in a parsed config.
        let command = <Only as clap::CommandFactory>::command();
        let database_url = command
            .get_arguments()
            .find(|arg| arg.get_id() == "database_url")
            .and_then(|arg| arg.get_default_values().first())
            .and_then(|value| value.to_str());
        assert_eq!(
            database_url,
            Some("postgres://b2b_api:b2b_api@127.0.0.1:55432/b2b")
        );
        let config = config(&["--app-env=local"]);
        assert_eq!(config.partitions, 4);
        let identity = format!("{:?}", auth::IdentityPolicy::default());
        assert_eq!(format!("{:?}", config.identity), identity);
        assert_eq!(config.bus.cache_weight, 50_000);
        assert_eq!(config.access_token_ttl, Duration::from_secs(900));
        assert!(config.trusted_proxies.is_empty());
        assert_eq!(
            config.jwt_secret.expose_secret(),
            LOCAL_JWT_SECRET.as_bytes()
        );
    }

    #[test]
    fn zero_where_a_limit_is_meant_is_refused() {
        let parsed = Only::try_parse_from(["b2b", "--relay-lease-ms=0"]);
        assert!(parsed.is_err());
    }
}
