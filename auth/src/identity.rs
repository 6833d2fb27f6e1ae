//! The identity service both APIs share: sign in, refresh, sign out, and admit a request.
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use uuid::Uuid;

use crate::admission::Admission;
use crate::passwords::{dummy_password_hash, verify_password, MAX_PASSWORD_CHARS};
use crate::throttle::{guessing_source, SignInThrottle};
use crate::tokens::refresh_token_hash;
use crate::{lockout, sessions, AuthError, Claims, TokenKeys};

/// Longest tenant slug and e-mail a sign-in may name (a slug is at most 63 characters; an
/// address at most 254, RFC 5321).
pub const MAX_SLUG_CHARS: usize = 63;
pub const MAX_EMAIL_CHARS: usize = aggregates::limits::EMAIL_MAX;

/// How long things last and how much a caller may do.
#[derive(Debug, Clone)]
pub struct IdentityPolicy {
    /// A session's absolute lifetime; refreshing does not extend it.
    pub session_lifetime: Duration,
    /// Failed sign-ins for one tenant and e-mail within `lock_for` that lock them for
    /// `lock_for`.
    pub max_sign_in_failures: u32,
    pub lock_for: Duration,
    /// Requests per minute one user may make, over both APIs.
    pub requests_per_user_per_minute: u32,
    /// Sign-in attempts per minute from one client address, per replica.
    pub sign_ins_per_address_per_minute: u32,
}

impl Default for IdentityPolicy {
    fn default() -> Self {
        Self {
            session_lifetime: Duration::from_secs(30 * 24 * 3600),
            max_sign_in_failures: 5,
            lock_for: Duration::from_secs(15 * 60),
            requests_per_user_per_minute: 600,
            sign_ins_per_address_per_minute: 60,
        }
    }
}

/// A fresh access token and the refresh token that replaces the caller's previous one.
#[derive(Debug)]
pub struct Tokens {
    pub access_token: String,
    pub refresh_token: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
}

#[derive(Clone)]
pub struct Identity {
    pool: PgPool,
    keys: TokenKeys,
    policy: IdentityPolicy,
    admission: Arc<Admission>,
    hashing: Arc<HashingGate>,
    throttle: Arc<SignInThrottle>,
}

impl Identity {
    /// `pool` logs in as a member of `b2b_app` (the APIs log in as `b2b_api`).
    pub fn new(pool: PgPool, keys: TokenKeys, policy: IdentityPolicy) -> Self {
        Self {
            admission: Arc::new(Admission::new(pool.clone())),
            hashing: Arc::new(HashingGate::sized_to_cores()),
            throttle: Arc::new(SignInThrottle::new(policy.sign_ins_per_address_per_minute)),
            pool,
            keys,
            policy,
        }
    }

    /// Whether the invalidation listener is connected: only then are sessions cached. Any
    /// change empties the cache.
    pub fn set_cache_live(&self, live: bool) {
        self.admission.set_live(live);
    }

    /// A session ended: its next request is refused on this replica too.
    pub fn forget_session(&self, session_id: Uuid) {
        self.admission.forget_session(session_id);
    }

    /// A user changed (roles, account, e-mail, password, active): re-read their sessions.
    pub fn forget_user(&self, user_id: Uuid) {
        self.admission.forget_user(user_id);
    }

    /// Unknown tenant, unknown e-mail and wrong password all fail the same way after the same
    /// argon2 work, and count towards the same lock of the guessing source (`client`, tenant
    /// and e-mail; every attempt counts until it succeeds). `client` is also throttled across
    /// e-mails.
    #[tracing::instrument(skip(self, email, password))]
    pub async fn sign_in(
        &self,
        client: IpAddr,
        tenant: &str,
        email: &str,
        password: &str,
    ) -> Result<Tokens, AuthError> {
        let email = email.trim().to_lowercase();
        check_sign_in_input(tenant, &email, password)?;
        let client = guessing_source(client);
        self.throttle.admit(client)?;
        let address = client.to_string();
        let source = lockout::Source {
            address: &address,
            tenant,
            email: &email,
        };
        let attempt = lockout::count_attempt(&self.pool, &source, &self.policy).await?;
        if let Some(retry_after) = attempt.locked_for {
            return Err(AuthError::SignInLocked { retry_after });
        }
        tokio::time::sleep(attempt.delay(&self.policy)).await;
        // No tenant is known yet: `sign_in_credentials` (migration 0021) answers for the one
        // tenant and e-mail named.
        let found: Option<(Uuid, Uuid, String)> = sqlx::query_as(
            "select tenant_id, user_id, password_hash from sign_in_credentials($1, $2)",
        )
        .bind(tenant)
        .bind(&email)
        .fetch_optional(&self.pool)
        .await?;
        let stored_hash = found.as_ref().map_or_else(
            || dummy_password_hash().to_owned(),
            |(_, _, hash)| hash.clone(),
        );
        let password = password.to_owned();
        let _turn = self.hashing.enter().await?;
        // argon2 takes tens of milliseconds of CPU: keep it off the async workers.
        let password_ok =
            tokio::task::spawn_blocking(move || verify_password(&password, &stored_hash))
                .await
                .map_err(|_| AuthError::Hashing)?;
        let Some((tenant_id, user_id, _)) = found.filter(|_| password_ok) else {
            return Err(AuthError::InvalidCredentials);
        };
        lockout::clear(&self.pool, &source).await?;
        self.open_session(tenant_id, user_id).await
    }

    /// A new password's hash, taking its turn with the sign-in checks: argon2 runs at most as
    /// many at once as there are cores, whoever asks.
    pub async fn hash_password(&self, password: String) -> Result<String, AuthError> {
        let _turn = self.hashing.enter().await?;
        crate::passwords::hash_new_password(password).await
    }

    /// Starts a session for a user of `tenant_id` whose credentials were checked.
    pub async fn open_session(&self, tenant_id: Uuid, user_id: Uuid) -> Result<Tokens, AuthError> {
        let mut tx = event_store::db::begin_for_tenant(&self.pool, tenant_id).await?;
        let lifetime = self.policy.session_lifetime;
        let session_id = sessions::open(&mut tx, (tenant_id, user_id), lifetime).await?;
        let refresh_token = sessions::issue_refresh_token(&mut tx, (tenant_id, session_id)).await?;
        let claims = sessions::claims(&mut tx, user_id, session_id)
            .await?
            .ok_or(AuthError::InvalidCredentials)?;
        tx.commit().await?;
        tracing::info!(%user_id, %session_id, "session opened");
        Ok(self.tokens(claims, refresh_token))
    }

    /// Retires `refresh_token` and issues the next pair of the same session. A token that was
    /// already used means a copy exists: the whole session ends.
    #[tracing::instrument(skip_all)]
    pub async fn refresh(&self, refresh_token: &str) -> Result<Tokens, AuthError> {
        let mut tx = self.pool.begin().await?;
        let hash = refresh_token_hash(refresh_token);
        let found = sessions::lock_by_refresh_token(&mut tx, &hash)
            .await?
            .ok_or(AuthError::InvalidRefreshToken)?;
        if !found.live {
            return Err(AuthError::InvalidRefreshToken);
        }
        if found.already_used || !sessions::retire_refresh_token(&mut tx, &hash).await? {
            sessions::revoke(&mut *tx, found.session_id).await?;
            tx.commit().await?;
            tracing::warn!(
                session_id = %found.session_id,
                user_id = %found.user_id,
                "a used refresh token was presented again; the session is revoked"
            );
            return Err(AuthError::InvalidRefreshToken);
        }
        let next =
            sessions::issue_refresh_token(&mut tx, (found.tenant_id, found.session_id)).await?;
        let claims = sessions::claims(&mut tx, found.user_id, found.session_id)
            .await?
            .ok_or(AuthError::InvalidRefreshToken)?;
        tx.commit().await?;
        Ok(self.tokens(claims, next))
    }

    /// Ends the caller's session: its access and refresh tokens stop working at once.
    pub async fn sign_out(&self, caller: &Claims) -> Result<(), AuthError> {
        let mut tx = event_store::db::begin_for_tenant(&self.pool, caller.tid).await?;
        sessions::revoke(&mut *tx, caller.sid).await?;
        tx.commit().await?;
        tracing::info!(user_id = %caller.sub, session_id = %caller.sid, "signed out");
        Ok(())
    }

    /// Lets a request in: a valid access token whose session is live and whose user is active,
    /// within the user's rate limit and (for Partners) the account's API quota. The claims
    /// returned carry the roles and account stored now, not those at sign-in.
    pub async fn admit(&self, bearer_token: &str) -> Result<Claims, AuthError> {
        let claims = self.keys.verify(bearer_token)?;
        let admitted = self
            .admission
            .session(&claims)
            .await?
            .ok_or(AuthError::InvalidToken)?;
        self.admission
            .count(&claims, &admitted, self.policy.requests_per_user_per_minute)?;
        admitted.into_claims(claims)
    }

    fn tokens(&self, claims: Claims, refresh_token: String) -> Tokens {
        Tokens {
            access_token: self.keys.issue(claims),
            refresh_token,
            expires_in: self.keys.lifetime_seconds(),
        }
    }
}

/// Caps the password checks running at once: each holds about 18 MB and a core for tens of
/// milliseconds, so unbounded parallel sign-ins could exhaust memory. As many run as there are
/// cores, a few per core wait their turn, and beyond that a sign-in is refused at once (429 with
/// `Retry-After`) rather than queued without limit.
struct HashingGate {
    running: tokio::sync::Semaphore,
    waiting: std::sync::atomic::AtomicUsize,
    max_waiting: usize,
}

impl HashingGate {
    fn sized_to_cores() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        Self {
            running: tokio::sync::Semaphore::new(cores),
            waiting: std::sync::atomic::AtomicUsize::new(0),
            max_waiting: 4 * cores,
        }
    }

    async fn enter(&self) -> Result<tokio::sync::SemaphorePermit<'_>, AuthError> {
        use std::sync::atomic::Ordering;
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.max_waiting {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(AuthError::SignInsBusy { retry_after: 1 });
        }
        let permit = self.running.acquire().await;
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        permit.map_err(|_| AuthError::Hashing)
    }
}

/// Bounds what reaches argon2 and the database: lengths, and no control characters (Postgres
/// text cannot hold a NUL, and no slug or address has one).
fn check_sign_in_input(tenant: &str, email: &str, password: &str) -> Result<(), AuthError> {
    let too_long = |field, max| AuthError::InvalidInput {
        field,
        message: format!("at most {max} characters"),
    };
    for (field, value) in [("tenant", tenant), ("email", email)] {
        if value.chars().any(char::is_control) {
            return Err(AuthError::InvalidInput {
                field,
                message: "must not contain control characters".into(),
            });
        }
    }
    if tenant.chars().count() > MAX_SLUG_CHARS {
        return Err(too_long("tenant", MAX_SLUG_CHARS));
    }
    if email.chars().count() > MAX_EMAIL_CHARS {
        return Err(too_long("email", MAX_EMAIL_CHARS));
    }
    if password.chars().count() > MAX_PASSWORD_CHARS {
        return Err(too_long("password", MAX_PASSWORD_CHARS));
    }
    Ok(())
}
