//! The identity service both APIs share: sign in, refresh, sign out, and admit a request.
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use uuid::Uuid;

use crate::admission::Admission;
use crate::api_keys::{self, KeyGrant, KeyRequest, NewApiKey, Revoked};
use crate::passwords::{dummy_password_hash, verify_password, MAX_PASSWORD_CHARS};
use crate::throttle::{guessing_source, SignInThrottle};
use crate::tokens::refresh_token_hash;
use crate::totp::{self, SecondFactor};
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

/// What a correct password gets.
#[derive(Debug)]
pub enum SignIn {
    Session(Tokens),
    /// A second factor is needed: a TOTP code (`POST /auth/login/totp`), or, when `enroll`,
    /// enrolling in TOTP first (the tenant requires it for one of the user's roles).
    SecondFactor {
        mfa_token: String,
        enroll: bool,
    },
}

/// Who enrols in TOTP: a signed-in user, or one whose sign-in waits for the enrolment.
#[derive(Debug, Clone, Copy)]
pub enum Enrollee<'a> {
    Session(&'a Claims),
    Challenge(&'a str),
}

/// A new TOTP secret, shown this once.
#[derive(Debug)]
pub struct Enrolment {
    pub otpauth_uri: String,
    /// The secret alone (base32), for apps that cannot read the URI.
    pub secret: String,
}

/// A confirmed enrolment: the recovery codes (shown this once) and, when the confirmation
/// completed a sign-in, its session.
#[derive(Debug)]
pub struct Confirmed {
    pub recovery_codes: Vec<String>,
    pub tokens: Option<Tokens>,
}

/// Longest `mfa_token` and code accepted.
const MAX_MFA_TOKEN_CHARS: usize = 128;
const MAX_CODE_CHARS: usize = 32;

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

    /// An API key was revoked: its next request is refused on this replica too.
    pub fn forget_api_key(&self, key_id: Uuid) {
        self.admission.forget_api_key(key_id);
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
    ) -> Result<SignIn, AuthError> {
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
        let ids = (tenant_id, user_id);
        let mut tx = event_store::db::begin_for_tenant(&self.pool, tenant_id).await?;
        let enroll = match totp::second_factor(&mut tx, ids).await? {
            SecondFactor::None => {
                tx.commit().await?;
                lockout::clear(&self.pool, &source).await?;
                return Ok(SignIn::Session(
                    self.open_session(tenant_id, user_id).await?,
                ));
            }
            SecondFactor::Code => false,
            SecondFactor::Enrolment => true,
        };
        // The lockout is not cleared yet: the password alone proves nothing, and clearing it
        // would let whoever knows it guess codes without end.
        let mfa_token = totp::open_challenge(&mut tx, ids, (tenant, &email), enroll).await?;
        tx.commit().await?;
        Ok(SignIn::SecondFactor { mfa_token, enroll })
    }

    /// The second step of a sign-in that needs a code: `code` is the user's current TOTP code
    /// (a step not used before) or one of their unused recovery codes. Each attempt counts
    /// toward the sign-in lockout of `client`, the tenant and the e-mail of the first step.
    #[tracing::instrument(skip_all)]
    pub async fn complete_sign_in(
        &self,
        client: IpAddr,
        mfa_token: &str,
        code: &str,
    ) -> Result<Tokens, AuthError> {
        check_second_factor_input(mfa_token, code)?;
        let mut tx = self.pool.begin().await?;
        let challenge = totp::lock_challenge(&mut tx, mfa_token)
            .await?
            .filter(|c| c.live && !c.enroll)
            .ok_or(AuthError::InvalidSecondFactor)?;
        let source = self.count_code_attempt(client, &challenge).await?;
        if !totp::use_code(&mut tx, challenge.user_id, code, unix_now()).await? {
            return Err(AuthError::InvalidSecondFactor);
        }
        totp::close_challenge(&mut tx, mfa_token).await?;
        tx.commit().await?;
        self.clear_lockout(&source).await?;
        self.open_session(challenge.tenant_id, challenge.user_id)
            .await
    }

    /// Starts a TOTP enrolment (again, until it is confirmed): a new secret, shown once.
    pub async fn enroll_totp(&self, enrollee: Enrollee<'_>) -> Result<Enrolment, AuthError> {
        let (mut tx, tenant_id, user_id, label) = match enrollee {
            Enrollee::Session(caller) => {
                forbid_api_key(caller)?;
                let tx = event_store::db::begin_for_tenant(&self.pool, caller.tid).await?;
                (
                    tx,
                    caller.tid,
                    caller.sub,
                    (caller.email.clone(), caller.tenant.clone()),
                )
            }
            Enrollee::Challenge(token) => {
                check_second_factor_input(token, "")?;
                let mut tx = self.pool.begin().await?;
                let challenge = totp::lock_challenge(&mut tx, token)
                    .await?
                    .filter(|c| c.live && c.enroll)
                    .ok_or(AuthError::InvalidSecondFactor)?;
                let label = (challenge.email, challenge.tenant_slug);
                (tx, challenge.tenant_id, challenge.user_id, label)
            }
        };
        let (secret, otpauth_uri) = totp::new_secret(&label.0, &label.1);
        totp::enrol(&mut tx, (tenant_id, user_id), &secret).await?;
        tx.commit().await?;
        tracing::info!(%user_id, "TOTP enrolment started");
        Ok(Enrolment {
            secret: totp_rs::Secret::Raw(secret).to_encoded().to_string(),
            otpauth_uri,
        })
    }

    /// Confirms the enrolment with a first code and makes the recovery codes. For a sign-in
    /// that waited for the enrolment, wrong codes count toward the lockout and a right one
    /// completes the sign-in.
    pub async fn confirm_totp(
        &self,
        client: IpAddr,
        enrollee: Enrollee<'_>,
        code: &str,
    ) -> Result<Confirmed, AuthError> {
        match enrollee {
            Enrollee::Session(caller) => {
                forbid_api_key(caller)?;
                check_second_factor_input("", code)?;
                let ids = (caller.tid, caller.sub);
                let mut tx = event_store::db::begin_for_tenant(&self.pool, caller.tid).await?;
                self.confirm_in(&mut tx, ids, code).await?;
                let recovery_codes = totp::confirm(&mut tx, ids).await?;
                tx.commit().await?;
                Ok(Confirmed {
                    recovery_codes,
                    tokens: None,
                })
            }
            Enrollee::Challenge(token) => {
                check_second_factor_input(token, code)?;
                let mut tx = self.pool.begin().await?;
                let challenge = totp::lock_challenge(&mut tx, token)
                    .await?
                    .filter(|c| c.live && c.enroll)
                    .ok_or(AuthError::InvalidSecondFactor)?;
                let source = self.count_code_attempt(client, &challenge).await?;
                let ids = (challenge.tenant_id, challenge.user_id);
                self.confirm_in(&mut tx, ids, code)
                    .await
                    .map_err(|error| match error {
                        AuthError::Refused(_) => AuthError::InvalidSecondFactor,
                        other => other,
                    })?;
                let recovery_codes = totp::confirm(&mut tx, ids).await?;
                totp::close_challenge(&mut tx, token).await?;
                tx.commit().await?;
                self.clear_lockout(&source).await?;
                let tokens = self.open_session(ids.0, ids.1).await?;
                Ok(Confirmed {
                    recovery_codes,
                    tokens: Some(tokens),
                })
            }
        }
    }

    /// Checks the first code of a pending enrolment.
    async fn confirm_in(
        &self,
        tx: &mut sqlx::PgConnection,
        (_, user_id): (Uuid, Uuid),
        code: &str,
    ) -> Result<(), AuthError> {
        match totp::stored(tx, user_id).await? {
            None => Err(aggregates::DomainError::NotFound("TOTP enrolment").into()),
            Some(stored) if stored.confirmed => Err(aggregates::DomainError::rule(
                aggregates::RuleCode::TotpAlreadyEnabled,
                "two-factor sign-in is already enabled for this user",
            )
            .into()),
            Some(_) if totp::use_code(tx, user_id, code, unix_now()).await? => Ok(()),
            Some(_) => Err(aggregates::DomainError::rule(
                aggregates::RuleCode::TotpCodeWrong,
                "the code is not the enrolled secret's current one (or was used already)",
            )
            .into()),
        }
    }

    /// Counts a code attempt toward the lockout of the sign-in it completes, refusing it when
    /// that source is locked.
    async fn count_code_attempt(
        &self,
        client: IpAddr,
        challenge: &totp::Challenge,
    ) -> Result<(String, String, String), AuthError> {
        let client = guessing_source(client);
        self.throttle.admit(client)?;
        let address = client.to_string();
        let source = lockout::Source {
            address: &address,
            tenant: &challenge.tenant_slug,
            email: &challenge.email,
        };
        let attempt = lockout::count_attempt(&self.pool, &source, &self.policy).await?;
        if let Some(retry_after) = attempt.locked_for {
            return Err(AuthError::SignInLocked { retry_after });
        }
        tokio::time::sleep(attempt.delay(&self.policy)).await;
        Ok((
            address,
            challenge.tenant_slug.clone(),
            challenge.email.clone(),
        ))
    }

    async fn clear_lockout(
        &self,
        (address, tenant, email): &(String, String, String),
    ) -> Result<(), AuthError> {
        let source = lockout::Source {
            address,
            tenant,
            email,
        };
        lockout::clear(&self.pool, &source).await
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
    /// An API key (`b2bk_…`) is admitted the same way: live, within its own per-minute limit
    /// and its account's quota, with the roles stored now.
    pub async fn admit(&self, bearer_token: &str) -> Result<Claims, AuthError> {
        if api_keys::is_api_key(bearer_token) {
            return self.admit_api_key(bearer_token).await;
        }
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

    async fn admit_api_key(&self, presented: &str) -> Result<Claims, AuthError> {
        let (id, hash) = api_keys::parse_key(presented).ok_or(AuthError::InvalidToken)?;
        let key = self
            .admission
            .api_key(id)
            .await?
            .filter(|key| api_keys::hash_matches(&hash, &key.secret_hash))
            .ok_or(AuthError::InvalidToken)?;
        let claims = api_keys::claims_of_key(&key);
        let admitted = key.as_admitted();
        self.admission
            .count(&claims, &admitted, self.policy.requests_per_user_per_minute)?;
        self.admission.touch_key(&key);
        admitted.into_claims(claims)
    }

    /// Creates API key `id` for the caller's tenant, decided at `now`; the secret is in the
    /// answer only. An id already taken is refused (`api_key_exists`).
    pub async fn create_api_key(
        &self,
        caller: &Claims,
        id: Uuid,
        request: KeyRequest,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<NewApiKey, AuthError> {
        let grant = KeyGrant::decide(caller, request, now)?;
        let mut tx = event_store::db::begin_for_tenant(&self.pool, caller.tid).await?;
        if let Some(account) = grant.account_id {
            if !api_keys::account_exists(&mut tx, account).await? {
                return Err(aggregates::DomainError::NotFound("account").into());
            }
        }
        let created = api_keys::insert(&mut tx, caller, id, &grant)
            .await?
            .ok_or_else(|| {
                aggregates::DomainError::rule(
                    aggregates::RuleCode::ApiKeyExists,
                    "an API key with this id exists; choose another id",
                )
            })?;
        tx.commit().await?;
        tracing::info!(key_id = %id, created_by = %caller.sub, "API key created");
        Ok(created)
    }

    /// Revokes API key `id` of the caller's tenant; it stops working on every replica once the
    /// revocation is heard (the caller waits for that). Revoking a revoked key changes nothing.
    pub async fn revoke_api_key(
        &self,
        caller: &Claims,
        id: Uuid,
    ) -> Result<chrono::DateTime<chrono::Utc>, AuthError> {
        api_keys::may_manage_keys(caller)?;
        let mut tx = event_store::db::begin_for_tenant(&self.pool, caller.tid).await?;
        let revoked = api_keys::revoke(&mut tx, caller, id).await?;
        tx.commit().await?;
        match revoked {
            Revoked::At(at) => {
                self.admission.forget_api_key(id);
                tracing::info!(key_id = %id, revoked_by = %caller.sub, "API key revoked");
                Ok(at)
            }
            Revoked::NoSuchKey => Err(aggregates::DomainError::NotFound("API key").into()),
        }
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

fn unix_now() -> u64 {
    u64::try_from(chrono::Utc::now().timestamp()).unwrap_or(0)
}

/// Two-factor sign-in is a person's: an API key neither enrols nor confirms.
fn forbid_api_key(caller: &Claims) -> Result<(), AuthError> {
    if caller.api_key {
        return Err(aggregates::DomainError::Forbidden(
            "an API key has no two-factor sign-in".into(),
        )
        .into());
    }
    Ok(())
}

/// Bounds what reaches the database in the second step.
fn check_second_factor_input(mfa_token: &str, code: &str) -> Result<(), AuthError> {
    for (field, value, max) in [
        ("mfa_token", mfa_token, MAX_MFA_TOKEN_CHARS),
        ("code", code, MAX_CODE_CHARS),
    ] {
        if value.chars().count() > max {
            return Err(AuthError::InvalidInput {
                field,
                message: format!("at most {max} characters"),
            });
        }
    }
    Ok(())
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
