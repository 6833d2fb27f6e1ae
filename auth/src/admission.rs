//! Admission of one request: the session is live, the user active and in the token's tenant,
//! and the request is within the user's per-minute limit and, for a Partner, the account's API
//! quota.
//!
//! Sessions are cached in process while an invalidation listener is live (`set_live`): every
//! change that ends or narrows a session (sign-out, deactivation, role, account, e-mail or
//! password change) NOTIFYs `b2b_invalidate` in its own transaction (migration 0013), and the
//! listener drops the entries on every replica; when its connection drops, the cache is
//! emptied and bypassed until it is back. Entries also expire after `CACHED_FOR`, which bounds
//! how stale an account's API quota (read from its read model, which notifies nothing) can be.
//!
//! Requests are counted in process and merged across replicas through `request_counts` every
//! `MERGE_EVERY`: each replica adds its own counts and learns the shared totals. A user alone
//! on one replica is limited exactly; across replicas, each may admit what it saw in one merge
//! interval beyond the limit before it learns of the others' requests.
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use chrono::{DateTime, Timelike, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use crate::sessions::parse_roles;
use crate::{AuthError, Claims};

/// How long a cached session is trusted without news of it.
const CACHED_FOR: Duration = Duration::from_secs(10);
/// How often a replica merges its request counts with the others'.
const MERGE_EVERY: Duration = Duration::from_millis(100);

/// Which limit a refused request ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestLimit {
    /// Requests per minute for one user.
    User(u32),
    /// Requests per minute shared by an account's Partner users.
    AccountQuota(u32),
}

impl std::fmt::Display for RequestLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::User(limit) => write!(f, "more than {limit} requests this minute by this user"),
            Self::AccountQuota(quota) => write!(
                f,
                "the account's API quota of {quota} requests per minute is used up"
            ),
        }
    }
}

/// As the token's tenant (`live_session`, migration 0021, sets it for its one query).
const LIVE_SESSION: &str = "\
select email, roles, account_id, expires_at, account_quota from live_session($1, $2, $3)";

/// As no tenant yet (`live_api_key`, migration 0025, answers for the one key named).
const LIVE_API_KEY: &str = "\
select id, tenant_id, tenant_slug, roles, account_id, expires_at, secret_hash, account_quota \
  from live_api_key($1)";

/// How often one replica stamps a key's last use.
const TOUCH_EVERY: Duration = Duration::from_secs(60);

/// A live API key as stored now.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct AdmittedKey {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub tenant_slug: String,
    roles: Vec<String>,
    account_id: Option<Uuid>,
    pub expires_at: DateTime<Utc>,
    pub secret_hash: Vec<u8>,
    account_quota: Option<i32>,
}

impl AdmittedKey {
    /// What admission knows of a key, in the form it knows a session: a key has no e-mail.
    pub(crate) fn as_admitted(&self) -> Admitted {
        Admitted {
            email: String::new(),
            roles: self.roles.clone(),
            account_id: self.account_id,
            expires_at: self.expires_at,
            account_quota: self.account_quota,
        }
    }
}

/// A live session as stored: who its user is now.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct Admitted {
    email: String,
    roles: Vec<String>,
    account_id: Option<Uuid>,
    expires_at: DateTime<Utc>,
    account_quota: Option<i32>,
}

/// A session as the cache knows it; `None` when it has ended (which stays true).
#[derive(Debug)]
struct Cached {
    user_id: Uuid,
    tenant_id: Uuid,
    admitted: Option<Admitted>,
}

pub(crate) struct Admission {
    pool: PgPool,
    sessions: moka::sync::Cache<Uuid, Arc<Cached>>,
    live: AtomicBool,
    /// Bumped by every invalidation, so a read that raced one is not cached.
    generation: AtomicU64,
    counter: Arc<RequestCounter>,
    merging: OnceLock<()>,
    /// API keys by id, `None` once revoked or unknown (which stays true), like sessions.
    keys: moka::sync::Cache<Uuid, Option<Arc<AdmittedKey>>>,
    /// Keys whose last use this replica stamped within `TOUCH_EVERY`.
    touched: moka::sync::Cache<Uuid, ()>,
}

impl Admission {
    pub(crate) fn new(pool: PgPool) -> Self {
        let sessions = moka::sync::Cache::builder()
            .max_capacity(100_000)
            .time_to_live(CACHED_FOR)
            .support_invalidation_closures()
            .build();
        Self {
            counter: Arc::new(RequestCounter::new(pool.clone())),
            pool,
            sessions,
            keys: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(CACHED_FOR)
                .build(),
            touched: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(TOUCH_EVERY)
                .build(),
            live: AtomicBool::new(false),
            generation: AtomicU64::new(0),
            merging: OnceLock::new(),
        }
    }

    /// The stored state of the token's session, `None` when it has ended or the user is no
    /// longer active.
    pub(crate) async fn session(&self, claims: &Claims) -> Result<Option<Admitted>, AuthError> {
        let live = self.live.load(Ordering::Acquire);
        if let Some(cached) = self.sessions.get(&claims.sid).filter(|_| live) {
            if (cached.user_id, cached.tenant_id) == (claims.sub, claims.tid) {
                return Ok(cached
                    .admitted
                    .clone()
                    .filter(|a| a.expires_at > Utc::now()));
            }
        }
        let generation = self.generation.load(Ordering::Acquire);
        let admitted: Option<Admitted> = sqlx::query_as(LIVE_SESSION)
            .bind(claims.tid)
            .bind(claims.sid)
            .bind(claims.sub)
            .fetch_optional(&self.pool)
            .await?;
        if live && self.generation.load(Ordering::Acquire) == generation {
            let cached = Cached {
                user_id: claims.sub,
                tenant_id: claims.tid,
                admitted: admitted.clone(),
            };
            self.sessions.insert(claims.sid, Arc::new(cached));
        }
        Ok(admitted)
    }

    /// The stored state of API key `id`, `None` when it is unknown, revoked or expired.
    pub(crate) async fn api_key(&self, id: Uuid) -> Result<Option<Arc<AdmittedKey>>, AuthError> {
        let live = self.live.load(Ordering::Acquire);
        let cached = self.keys.get(&id).filter(|_| live);
        let key = match cached {
            Some(key) => key,
            None => {
                let generation = self.generation.load(Ordering::Acquire);
                let key: Option<AdmittedKey> = sqlx::query_as(LIVE_API_KEY)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?;
                let key = key.map(Arc::new);
                if live && self.generation.load(Ordering::Acquire) == generation {
                    self.keys.insert(id, key.clone());
                }
                key
            }
        };
        Ok(key.filter(|k| k.expires_at > Utc::now()))
    }

    /// Stamps the key's last use, at most once per `TOUCH_EVERY` on this replica, without
    /// holding the request up (a lost stamp only makes "last used" a minute older).
    pub(crate) fn touch_key(&self, key: &AdmittedKey) {
        if self.touched.contains_key(&key.id) {
            return;
        }
        self.touched.insert(key.id, ());
        let (pool, tenant, id) = (self.pool.clone(), key.tenant_id, key.id);
        tokio::spawn(async move {
            let touched = sqlx::query("select touch_api_key($1, $2)")
                .bind(tenant)
                .bind(id)
                .execute(&pool)
                .await;
            if let Err(error) = touched {
                tracing::warn!(%error, key_id = %id, "stamping an API key's last use failed");
            }
        });
    }

    /// Counts the request against the caller's limits.
    pub(crate) fn count(
        &self,
        claims: &Claims,
        admitted: &Admitted,
        per_user: u32,
    ) -> Result<(), AuthError> {
        self.merging.get_or_init(|| {
            tokio::spawn(merge_counts(Arc::downgrade(&self.counter)));
        });
        let partner = admitted.roles.iter().any(|r| r == "Partner");
        let account = admitted.account_id.filter(|_| partner);
        let (user_requests, account_requests) = self.counter.count(claims.sub, account);
        let limit = if user_requests > per_user {
            Some(RequestLimit::User(per_user))
        } else {
            admitted
                .account_quota
                .map(i32::unsigned_abs)
                .filter(|quota| account_requests.is_some_and(|n| n > *quota))
                .map(RequestLimit::AccountQuota)
        };
        match limit {
            Some(limit) => Err(AuthError::TooManyRequests {
                limit,
                retry_after: seconds_to_next_minute(),
            }),
            None => Ok(()),
        }
    }

    /// Whether invalidations are arriving; any change of that empties the cache.
    pub(crate) fn set_live(&self, live: bool) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.sessions.invalidate_all();
        self.keys.invalidate_all();
        self.live.store(live, Ordering::Release);
    }

    pub(crate) fn forget_session(&self, session_id: Uuid) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.sessions.invalidate(&session_id);
    }

    pub(crate) fn forget_api_key(&self, key_id: Uuid) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.keys.invalidate(&key_id);
    }

    pub(crate) fn forget_user(&self, user_id: Uuid) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        // Only fails when closures are not enabled, which `new` does.
        let _ = self
            .sessions
            .invalidate_entries_if(move |_, cached| cached.user_id == user_id);
    }
}

impl Admitted {
    pub(crate) fn into_claims(self, token: Claims) -> Result<Claims, AuthError> {
        Ok(Claims {
            email: self.email,
            roles: parse_roles(&self.roles)?,
            account_id: self.account_id,
            ..token
        })
    }
}

fn seconds_to_next_minute() -> u32 {
    60 - Utc::now().second().min(59)
}

fn minute_of(at: DateTime<Utc>) -> i64 {
    at.timestamp().div_euclid(60)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Subject {
    User(Uuid),
    Account(Uuid),
}

/// Requests this minute per subject: the total last learnt from the shared table (including
/// this replica's merged counts) plus what this replica admitted since.
#[derive(Debug, Default, Clone, Copy)]
struct Count {
    shared: u32,
    unmerged: u32,
}

struct RequestCounter {
    pool: PgPool,
    minute: Mutex<(i64, HashMap<Subject, Count>)>,
}

impl RequestCounter {
    fn new(pool: PgPool) -> Self {
        Self {
            pool,
            minute: Mutex::new((minute_of(Utc::now()), HashMap::new())),
        }
    }

    /// Counts one request; returns the user's and the account's requests this minute.
    fn count(&self, user: Uuid, account: Option<Uuid>) -> (u32, Option<u32>) {
        let mut guard = self.minute.lock().expect("request counter poisoned");
        let (minute, counts) = &mut *guard;
        let now = minute_of(Utc::now());
        if *minute != now {
            *minute = now;
            counts.clear();
        }
        let mut bump = |subject| {
            let count = counts.entry(subject).or_default();
            count.unmerged += 1;
            count.shared + count.unmerged
        };
        let user_requests = bump(Subject::User(user));
        (user_requests, account.map(|a| bump(Subject::Account(a))))
    }

    /// Adds this replica's unmerged counts to the shared table and learns the totals.
    async fn merge(&self) -> Result<(), sqlx::Error> {
        let (minute, deltas) = {
            let mut guard = self.minute.lock().expect("request counter poisoned");
            let minute = guard.0;
            let deltas: Vec<(Subject, u32)> = guard
                .1
                .iter_mut()
                .filter(|(_, c)| c.unmerged > 0)
                .map(|(subject, count)| {
                    let delta = count.unmerged;
                    count.shared += delta;
                    count.unmerged = 0;
                    (*subject, delta)
                })
                .collect();
            (minute, deltas)
        };
        if deltas.is_empty() {
            return Ok(());
        }
        let totals = add_to_shared(&self.pool, minute, &deltas).await?;
        let mut guard = self.minute.lock().expect("request counter poisoned");
        if guard.0 == minute {
            for (subject, total) in totals {
                let count = guard.1.entry(subject).or_default();
                count.shared = count.shared.max(total);
            }
        }
        Ok(())
    }
}

async fn add_to_shared(
    pool: &PgPool,
    minute: i64,
    deltas: &[(Subject, u32)],
) -> Result<Vec<(Subject, u32)>, sqlx::Error> {
    let (kinds, ids): (Vec<&str>, Vec<Uuid>) = deltas
        .iter()
        .map(|(subject, _)| match subject {
            Subject::User(id) => ("user", *id),
            Subject::Account(id) => ("account", *id),
        })
        .unzip();
    let added: Vec<i32> = deltas.iter().map(|(_, d)| *d as i32).collect();
    let rows: Vec<(String, Uuid, i32)> = sqlx::query_as(
        "insert into request_counts as r (subject_kind, subject_id, window_start, requests)
         select kind, id, to_timestamp($4 * 60), added
           from unnest($1::text[], $2::uuid[], $3::int[]) as u(kind, id, added)
         on conflict (subject_kind, subject_id) do update
            set requests = case when r.window_start = excluded.window_start
                                then r.requests + excluded.requests else excluded.requests end,
                window_start = excluded.window_start
         returning subject_kind, subject_id, requests",
    )
    .bind(&kinds)
    .bind(&ids)
    .bind(&added)
    .bind(minute as f64)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(kind, id, total)| {
            let subject = if kind == "user" {
                Subject::User(id)
            } else {
                Subject::Account(id)
            };
            (subject, total.unsigned_abs())
        })
        .collect())
}

/// Merges every `MERGE_EVERY` for as long as the counter lives.
async fn merge_counts(counter: Weak<RequestCounter>) {
    let mut tick = tokio::time::interval(MERGE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(counter) = counter.upgrade() else {
            return;
        };
        if let Err(error) = counter.merge().await {
            tracing::warn!(%error, "merging request counts failed; retrying");
        }
    }
}
