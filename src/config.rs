//! Configuration from environment variables, with defaults that work against the local stack
//! (`deploy/local/stack.sh`).
use std::time::Duration;

use anyhow::{bail, Context};
use event_store::audit::keys::{self, SigningKey};

const LOCAL_JWT_SECRET: &str = "local-development-only-signing-key-change-me";
/// The audit checkpoints' Ed25519 seed for `APP_ENV=local` and `test` only: published here, so
/// checkpoints signed with it prove nothing and no other deployment may use it.
const LOCAL_AUDIT_SEED: [u8; 32] = *b"b2b-local-only-audit-signing-key";

#[derive(Debug, Clone)]
pub struct Config {
    /// The APIs' login (`b2b_api`): no owner, no superuser, row-level security applies.
    pub database_url: String,
    /// The relay's and projector's login (`b2b_worker`): as the APIs', plus every tenant's
    /// events and timers.
    pub worker_database_url: String,
    /// The schema owner: migrations and the operator commands.
    pub owner_database_url: String,
    pub amqp_url: String,
    /// Prefix of every RabbitMQ exchange and queue name.
    pub amqp_prefix: String,
    /// Queues per consumer group; fixed per deployment.
    pub partitions: u16,
    pub bind_addr: String,
    /// Where `/metrics` is served: apart from the APIs, loopback by default.
    pub metrics_addr: String,
    pub jwt_secret: Vec<u8>,
    pub access_token_ttl: Duration,
    pub await_timeout: Duration,
    /// Requests that may wait for `X-Await-Version` at once; beyond, 503.
    pub await_max_waiters: usize,
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
    /// How often the command API removes Idempotency-Key receipts past their 24 hours.
    pub receipt_sweep: Duration,
    /// Signs audit checkpoints; none outside `APP_ENV=local`/`test` unless one is given.
    pub audit_signing_key: Option<SigningKey>,
    /// How often the checkpoint worker signs each tenant's new history.
    pub audit_checkpoint_interval: Duration,
}

impl Config {
    pub fn from_env() -> anyhow::Result<Self> {
        let app_env = app_env();
        Ok(Self {
            database_url: var(
                "DATABASE_URL",
                "postgres://b2b_api:b2b_api@127.0.0.1:55432/b2b",
            ),
            worker_database_url: var(
                "WORKER_DATABASE_URL",
                "postgres://b2b_worker:b2b_worker@127.0.0.1:55432/b2b",
            ),
            owner_database_url: var(
                "DATABASE_OWNER_URL",
                "postgres://b2b:b2b@127.0.0.1:55432/b2b",
            ),
            amqp_url: var("AMQP_URL", "amqp://b2b:b2b@127.0.0.1:55672/%2f"),
            amqp_prefix: var("AMQP_PREFIX", "b2b"),
            partitions: parse("PROJECTOR_PARTITIONS", "4")?,
            bind_addr: var("BIND_ADDR", "127.0.0.1:8080"),
            metrics_addr: var("METRICS_ADDR", "127.0.0.1:9464"),
            jwt_secret: jwt_secret(&app_env)?,
            access_token_ttl: Duration::from_secs(
                parse::<u64>("ACCESS_TOKEN_TTL_SECONDS", "900")?.min(900),
            ),
            await_timeout: Duration::from_millis(parse("AWAIT_VERSION_TIMEOUT_MS", "5000")?),
            await_max_waiters: usize::try_from(positive("AWAIT_VERSION_MAX_WAITERS", 1000)?)?,
            trusted_proxies: var("TRUSTED_PROXIES", "")
                .split(',')
                .map(str::trim)
                .filter(|address| !address.is_empty())
                .map(|address| {
                    address
                        .parse()
                        .context("TRUSTED_PROXIES lists IP addresses")
                })
                .collect::<anyhow::Result<_>>()?,
            cors_allowed_origins: var("CORS_ALLOWED_ORIGINS", "")
                .split(',')
                .map(str::trim)
                .filter(|origin| !origin.is_empty())
                .map(str::to_owned)
                .collect(),
            clock: var("B2B_CLOCK", "system"),
            timer_poll_interval: Duration::from_millis(parse("TIMER_POLL_MS", "1000")?),
            identity: identity_policy()?,
            bus: event_store::BusOptions {
                cache_weight: parse(
                    "AGGREGATE_CACHE_EVENTS",
                    &event_store::streams::DEFAULT_CACHE_WEIGHT.to_string(),
                )?,
            },
            relay_lease: Duration::from_millis(positive("RELAY_LEASE_MS", 5000)?),
            test_faults: test_faults()?,
            receipt_sweep: Duration::from_secs(positive("IDEMPOTENCY_SWEEP_SECONDS", 600)?),
            audit_signing_key: audit_signing_key(&app_env)?,
            audit_checkpoint_interval: Duration::from_secs(positive(
                "AUDIT_CHECKPOINT_SECONDS",
                60,
            )?),
            app_env,
        })
    }

    /// The checkpoint signing key, which every process that signs checkpoints needs.
    pub fn audit_key(&self) -> anyhow::Result<&SigningKey> {
        self.audit_signing_key.as_ref().with_context(|| {
            format!(
                "AUDIT_SIGNING_KEY or AUDIT_SIGNING_KEY_FILE must be set outside APP_ENV=local or \
                 test (APP_ENV is `{}`): the audit checkpoint worker (`b2b serve`, `b2b relay`) \
                 and `b2b audit checkpoint` sign with it",
                self.app_env
            )
        })
    }
}

fn identity_policy() -> anyhow::Result<auth::IdentityPolicy> {
    let defaults = auth::IdentityPolicy::default();
    let seconds =
        |name, default: Duration| positive(name, default.as_secs()).map(Duration::from_secs);
    let count = |name, default: u32| {
        positive(name, u64::from(default))
            .and_then(|n| u32::try_from(n).with_context(|| format!("{name} is too large")))
    };
    Ok(auth::IdentityPolicy {
        session_lifetime: seconds("SESSION_LIFETIME_SECONDS", defaults.session_lifetime)?,
        max_sign_in_failures: count("SIGN_IN_MAX_FAILURES", defaults.max_sign_in_failures)?,
        lock_for: seconds("SIGN_IN_LOCK_SECONDS", defaults.lock_for)?,
        requests_per_user_per_minute: count(
            "RATE_LIMIT_PER_USER_PER_MINUTE",
            defaults.requests_per_user_per_minute,
        )?,
        sign_ins_per_address_per_minute: count(
            "SIGN_IN_PER_ADDRESS_PER_MINUTE",
            defaults.sign_ins_per_address_per_minute,
        )?,
    })
}

/// `B2B_TEST_FAULTS=1` lets a request crash the process on purpose: never outside tests.
fn test_faults() -> anyhow::Result<bool> {
    let enabled = var("B2B_TEST_FAULTS", "0") == "1";
    if enabled && app_env() != "test" {
        bail!("B2B_TEST_FAULTS is refused outside APP_ENV=test");
    }
    Ok(enabled)
}

/// A whole number of at least 1: zero would silently switch a limit or a lifetime off.
fn positive(name: &str, default: u64) -> anyhow::Result<u64> {
    let value: u64 = parse(name, &default.to_string())?;
    if value == 0 {
        bail!("{name} must be at least 1");
    }
    Ok(value)
}

fn var(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

fn parse<T: std::str::FromStr>(name: &str, default: &str) -> anyhow::Result<T>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    var(name, default)
        .parse()
        .with_context(|| format!("{name} is not a valid value"))
}

/// Unset means a real deployment: forgetting it must not switch the built-in key on.
fn app_env() -> String {
    var("APP_ENV", "production")
}

/// Shorter keys can be brute-forced offline from one captured token (HS256).
const MIN_JWT_SECRET_BYTES: usize = 32;

/// `JWT_SECRET`, or the contents of `JWT_SECRET_FILE`, at least 32 bytes. The built-in key is
/// only for `APP_ENV=local`: anywhere else it, a short key or none refuses to start.
fn jwt_secret(app_env: &str) -> anyhow::Result<Vec<u8>> {
    let local = app_env == "local";
    let secret = if let Ok(secret) = std::env::var("JWT_SECRET") {
        secret.into_bytes()
    } else if let Ok(path) = std::env::var("JWT_SECRET_FILE") {
        let secret = std::fs::read(&path).with_context(|| format!("reading {path}"))?;
        secret.trim_ascii().to_vec()
    } else if local {
        return Ok(LOCAL_JWT_SECRET.as_bytes().to_vec());
    } else {
        bail!("JWT_SECRET or JWT_SECRET_FILE must be set outside APP_ENV=local (APP_ENV is `{app_env}`)");
    };
    if secret.len() < MIN_JWT_SECRET_BYTES {
        bail!("the signing key (JWT_SECRET) must be at least {MIN_JWT_SECRET_BYTES} bytes");
    }
    if secret == LOCAL_JWT_SECRET.as_bytes() && !local {
        bail!("the built-in development signing key is refused outside APP_ENV=local");
    }
    Ok(secret)
}

/// `AUDIT_SIGNING_KEY`, or the contents of `AUDIT_SIGNING_KEY_FILE`: a PKCS#8 PEM Ed25519 key or
/// a 32-byte seed in base64. Local and test runs fall back to the built-in key, which anywhere
/// else is refused; elsewhere no key is no checkpoint worker (see `Config::audit_key`).
fn audit_signing_key(app_env: &str) -> anyhow::Result<Option<SigningKey>> {
    let built_in_allowed = matches!(app_env, "local" | "test");
    let text = if let Ok(text) = std::env::var("AUDIT_SIGNING_KEY") {
        text
    } else if let Ok(path) = std::env::var("AUDIT_SIGNING_KEY_FILE") {
        std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?
    } else if built_in_allowed {
        return Ok(Some(SigningKey::from_bytes(&LOCAL_AUDIT_SEED)));
    } else {
        return Ok(None);
    };
    let key = keys::signing_key(&text).context("AUDIT_SIGNING_KEY")?;
    if key.to_bytes() == LOCAL_AUDIT_SEED && !built_in_allowed {
        bail!("the built-in development audit key is refused outside APP_ENV=local or test");
    }
    Ok(Some(key))
}
