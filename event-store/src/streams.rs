//! One aggregate type's streams: loading them through an in-process cache, and appending a
//! command's events (with what must commit alongside them) in one transaction.
//!
//! The cache holds, per stream, the folded state, its version and the tenant that owns it. It
//! is never trusted blindly: an append names the version it decided on, so a stale entry
//! (another process wrote meanwhile) fails on the events' primary key and the caller refreshes
//! by reading only the events after the cached version. Bounded by weight: an entry weighs one
//! plus the number of events folded into it, a proxy for its size that costs nothing to compute.
use std::sync::Arc;

use aggregates::{EventSchema, PersonalData};
use cqrs_es::{Aggregate, DomainEvent};
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::idempotency::Receipt;
use crate::personal::{self, Sealed};
use crate::{EventMetadata, StoreError};

/// A stream folded up to `version`; `owner` is the tenant of its first event (none while empty).
#[derive(Debug, Clone)]
pub struct Folded<A> {
    pub owner: Option<Uuid>,
    pub version: u64,
    pub aggregate: A,
}

impl<A: Aggregate> Folded<A> {
    fn empty() -> Self {
        Self {
            owner: None,
            version: 0,
            aggregate: A::default(),
        }
    }

    /// The state for `tenant`: another tenant's stream does not exist for it.
    pub fn for_tenant(self, tenant: Uuid) -> Result<Self, StoreError> {
        match self.owner {
            Some(owner) if owner != tenant => Err(StoreError::NotFound(A::TYPE)),
            _ => Ok(self),
        }
    }
}

/// What commits with a command's events besides them.
#[derive(Default)]
pub struct AlongsideEvents<'a> {
    /// The `Idempotency-Key` and the reply it will replay.
    pub receipt: Option<&'a Receipt>,
    /// A new password for the user the events are about (never part of an event).
    pub credential: Option<Credential<'a>>,
}

/// A user's new password hash. Storing it ends the user's sessions but `keep_session` (the
/// caller's own, when users change their own password).
#[derive(Clone, Copy)]
pub struct Credential<'a> {
    pub password_hash: &'a str,
    pub keep_session: Option<Uuid>,
}

/// How long to keep asking whether an append whose connection failed committed.
const OUTCOME_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);

/// Default cache weight per aggregate type: events folded into cached entries.
pub const DEFAULT_CACHE_WEIGHT: u64 = 50_000;

/// Locks that let one command at a time decide on a stream in this process (striped by id:
/// bounded, and collisions between different streams only cost a short wait).
const TURN_STRIPES: usize = 1024;

pub struct Streams<A: Aggregate> {
    pool: PgPool,
    cache: moka::sync::Cache<String, Arc<Folded<A>>>,
    turns: Vec<tokio::sync::Mutex<()>>,
}

impl<A> Streams<A>
where
    A: Aggregate<Event: EventSchema> + PersonalData + Clone + 'static,
{
    pub fn new(pool: PgPool, cache_weight: u64) -> Self {
        let cache = moka::sync::Cache::builder()
            .max_capacity(cache_weight)
            .weigher(|_, folded: &Arc<Folded<A>>| {
                u32::try_from(folded.version.saturating_add(1)).unwrap_or(u32::MAX)
            })
            .build();
        let turns = (0..TURN_STRIPES)
            .map(|_| tokio::sync::Mutex::new(()))
            .collect();
        Self { pool, cache, turns }
    }

    /// Waits for this process's turn on the stream: commands to one stream from one process
    /// queue here instead of colliding in the database and retrying.
    pub async fn turn(&self, id: &str) -> tokio::sync::MutexGuard<'_, ()> {
        use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
        let hash = BuildHasherDefault::<DefaultHasher>::default().hash_one(id);
        self.turns[hash as usize % TURN_STRIPES].lock().await
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The cached state if there is one (possibly stale), else the stream read in full as
    /// `tenant` sees it. The cache is shared by every tenant; its entries name their owner.
    pub async fn cached(&self, id: &str, tenant: Uuid) -> Result<Folded<A>, StoreError> {
        match self.cache.get(id) {
            Some(folded) => Ok(Folded::clone(&folded)),
            None => self.refresh(id, Folded::empty(), tenant).await,
        }
    }

    /// The current state: the cached one brought up to date with the events after it.
    pub async fn current(&self, id: &str, tenant: Uuid) -> Result<Folded<A>, StoreError> {
        let known = self
            .cache
            .get(id)
            .map_or_else(Folded::empty, |f| Folded::clone(&f));
        self.refresh(id, known, tenant).await
    }

    /// Folds the events after `known.version` into it and caches the result. Reads as
    /// `tenant` (row-level security): another tenant's stream shows no events at all.
    pub async fn refresh(
        &self,
        id: &str,
        mut known: Folded<A>,
        tenant: Uuid,
    ) -> Result<Folded<A>, StoreError> {
        let mut rows: Vec<(i64, Uuid, String, String, Value)> = sqlx::query_as(
            "select sequence, tenant_id, event_type, event_version, payload::json \
               from stream_events($1, $2, $3, $4)",
        )
        .bind(tenant)
        .bind(A::TYPE)
        .bind(id)
        .bind(known.version as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| StoreError::Storage(format!("reading {}/{id}: {e}", A::TYPE)))?;
        if rows.is_empty() {
            return Ok(known);
        }
        let payloads = rows.iter_mut().map(|row| (row.1, &mut row.4)).collect();
        personal::reveal(&self.pool, payloads).await?;
        for (sequence, tenant, event_type, version, payload) in rows {
            let event = crate::decode::<A::Event>(&event_type, &version, payload)?;
            known.owner.get_or_insert(tenant);
            known.version = sequence as u64;
            known.aggregate.apply(event);
        }
        self.remember(id, &known);
        Ok(known)
    }

    fn remember(&self, id: &str, folded: &Folded<A>) {
        self.cache.insert(id.to_owned(), Arc::new(folded.clone()));
    }

    /// Appends `events` after `decided.version` and commits them with `alongside`, all in one
    /// transaction. A single statement when nothing but events and a receipt commit: one round
    /// trip (plus one to find the key of each subject whose personal data the events hold).
    /// `decided` must already hold the events applied (cqrs-es's `EventSink` does that).
    pub async fn append(
        &self,
        id: &str,
        decided: &Folded<A>,
        events: Vec<A::Event>,
        metadata: &EventMetadata,
        alongside: &AlongsideEvents<'_>,
    ) -> Result<(), AppendError> {
        let (tenant, metadata_json) = (metadata.tenant_id, metadata.to_json());
        let from = decided.version - events.len() as u64;
        let mut rows = EventRows::new(&events, from).map_err(AppendError::Storage)?;
        let person = match (&metadata.actor, metadata.api_key_id) {
            (aggregates::Actor::User { user_id, .. }, None) => Some(*user_id),
            _ => None,
        };
        let personal: Vec<_> = events
            .iter()
            .map(|event| decided.aggregate.personal_data(id, event, person))
            .collect();
        let sealed = personal::seal(&self.pool, tenant, &personal, &mut rows.payloads)
            .await
            .map_err(|e| AppendError::Storage(e.to_string()))?;
        let statement = AppendStatement {
            tenant,
            aggregate_type: A::TYPE,
            id,
            rows,
            sealed,
            metadata: &metadata_json,
            receipt: alongside.receipt,
            version_after: decided.version,
        };
        let result = match alongside.credential {
            None => statement.run(&mut *self.pool.acquire().await?).await,
            Some(credential) => {
                let mut tx = crate::db::begin_for_tenant(&self.pool, tenant).await?;
                statement.run(&mut tx).await?;
                store_credential(&mut tx, id, credential).await?;
                tx.commit().await.map_err(AppendError::from)
            }
        };
        let result = match result {
            Err(AppendError::Storage(error)) => {
                self.cache.invalidate(id);
                self.resolve_unknown_outcome(id, from + 1, metadata, error)
                    .await
            }
            other => other,
        };
        if result.is_ok() {
            self.remember(id, decided);
        }
        result
    }

    /// The connection failed while the append was in flight (a database restart, say): it may
    /// have committed or not. Asks the store, once it answers again, whether the stream holds
    /// this request's first event, so the caller never reports a failure for events that were
    /// stored, nor retries ones that were.
    async fn resolve_unknown_outcome(
        &self,
        id: &str,
        first_sequence: u64,
        metadata: &EventMetadata,
        error: String,
    ) -> Result<(), AppendError> {
        let (tenant, request_id) = (metadata.tenant_id, metadata.request_id.to_string());
        let deadline = tokio::time::Instant::now() + OUTCOME_DEADLINE;
        while tokio::time::Instant::now() < deadline {
            let stored: Result<bool, sqlx::Error> = async {
                let mut tx = crate::db::begin_read_only_for_tenant(&self.pool, tenant).await?;
                sqlx::query_scalar(
                    "select exists (select 1 from events where aggregate_type = $1 \
                     and aggregate_id = $2 and sequence = $3 and metadata ->> 'request_id' = $4)",
                )
                .bind(A::TYPE)
                .bind(id)
                .bind(first_sequence as i64)
                .bind(&request_id)
                .fetch_one(&mut *tx)
                .await
            }
            .await;
            match stored {
                Ok(true) => {
                    tracing::warn!(%error, "the append's reply was lost but it committed");
                    return Ok(());
                }
                Ok(false) => return Err(AppendError::Storage(error)),
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(200)).await,
            }
        }
        Err(AppendError::Storage(format!(
            "{error}; whether it committed is unknown"
        )))
    }
}

/// Why an append did not commit.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// Another writer appended to the stream first.
    #[error("the stream moved on")]
    Conflict,
    /// The `Idempotency-Key` was recorded by a concurrent request first.
    #[error("the idempotency key was used by a concurrent request")]
    KeyTaken,
    /// The database refused a rule that spans streams (it is checked there, serialised, because
    /// a concurrent command can break it between the aggregate's check and the append).
    #[error(transparent)]
    Rejected(aggregates::DomainError),
    #[error("event store failure: {0}")]
    Storage(String),
}

impl From<sqlx::Error> for AppendError {
    fn from(error: sqlx::Error) -> Self {
        let constraint = error.as_database_error().and_then(|e| e.constraint());
        match constraint {
            Some("events_pkey") => Self::Conflict,
            Some("idempotency_keys_pkey") => Self::KeyTaken,
            Some("last_tenant_admin") => Self::Rejected(aggregates::DomainError::rule(
                aggregates::RuleCode::LastTenantAdmin,
                "the tenant must keep at least one active TenantAdmin",
            )),
            // Personal data about a user forgotten while this command was deciding (0032).
            Some("subject_forgotten") => Self::Rejected(aggregates::DomainError::rule(
                aggregates::RuleCode::UserForgotten,
                "the user this names was forgotten; their data is erased",
            )),
            _ => Self::Storage(error.to_string()),
        }
    }
}

/// A command's events as the column arrays the append statement unnests.
struct EventRows {
    sequences: Vec<i64>,
    types: Vec<String>,
    versions: Vec<String>,
    payloads: Vec<Value>,
}

impl EventRows {
    fn new<E: DomainEvent>(events: &[E], after: u64) -> Result<Self, String> {
        let payloads = events
            .iter()
            .map(serde_json::to_value)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("serializing an event: {e}"))?;
        Ok(Self {
            sequences: (1..=events.len() as i64)
                .map(|n| after as i64 + n)
                .collect(),
            types: events.iter().map(DomainEvent::event_type).collect(),
            versions: events.iter().map(DomainEvent::event_version).collect(),
            payloads,
        })
    }
}

/// The events, in sequence order (the insert trigger chains each to the one before), the
/// receipt and the keys their personal data was first sealed with, as one statement. The
/// statement names its tenant (row-level security) itself: every insert takes its rows from
/// `tenant`, so the setting is made before any row is checked, and it costs no round trip of
/// its own. So is the sign-in address the credentials trigger needs (0032).
const APPEND: &str = "\
with tenant as (
    select set_config('app.tenant_id', $13::text, true),
           set_config('app.sign_in_email', coalesce($14, ''), true)
), keys as (
    insert into subject_keys (key_id, tenant_id, subject, secret)
    select k.id, $13, k.subject, k.secret
      from tenant, unnest($15::uuid[], $16::text[], $17::bytea[]) as k(id, subject, secret)
), appended as (
    insert into events (aggregate_type, aggregate_id, sequence, event_type, event_version,
                        payload, metadata)
    select $1, $2, e.sequence, e.event_type, e.event_version, e.payload, $7
      from tenant, unnest($3::bigint[], $4::text[], $5::text[], $6::json[])
           with ordinality as e(sequence, event_type, event_version, payload, n)
     order by e.n
    returning sequence
), receipt as (
    insert into idempotency_keys (tenant_id, user_id, key, request_hash, status, response)
    select $8, $9, $10, $11, 200, $12 from tenant where $10::text is not null
)
select count(*) from appended";

/// One command's append: its events and its receipt.
struct AppendStatement<'a> {
    tenant: Uuid,
    aggregate_type: &'a str,
    id: &'a str,
    rows: EventRows,
    sealed: Sealed,
    metadata: &'a Value,
    receipt: Option<&'a Receipt>,
    version_after: u64,
}

impl AppendStatement<'_> {
    async fn run(&self, conn: &mut PgConnection) -> Result<(), AppendError> {
        let (rows, receipt, sealed) = (&self.rows, self.receipt, &self.sealed);
        let appended: i64 = sqlx::query_scalar(APPEND)
            .bind(self.aggregate_type)
            .bind(self.id)
            .bind(&rows.sequences)
            .bind(&rows.types)
            .bind(&rows.versions)
            .bind(&rows.payloads)
            .bind(self.metadata)
            .bind(receipt.map(|r| r.tenant_id))
            .bind(receipt.map(|r| r.user_id))
            .bind(receipt.map(|r| r.key.as_str()))
            .bind(receipt.map(|r| r.request_hash.as_slice()))
            .bind(receipt.map(|r| r.reply(self.version_after)))
            .bind(self.tenant)
            .bind(sealed.sign_in_email.as_deref())
            .bind(&sealed.new_key_ids)
            .bind(&sealed.new_key_subjects)
            .bind(&sealed.new_key_secrets)
            .fetch_one(conn)
            .await?;
        debug_assert_eq!(appended as usize, rows.sequences.len());
        Ok(())
    }
}

/// The credentials row itself is kept in step with the User stream by a trigger (0007), within
/// this same transaction, so it exists here even for a user registered by these events. Whoever
/// knew the old password is signed out everywhere else.
async fn store_credential(
    conn: &mut PgConnection,
    user_id: &str,
    credential: Credential<'_>,
) -> Result<(), AppendError> {
    let user_id: Uuid = user_id
        .parse()
        .map_err(|_| AppendError::Storage(format!("user id `{user_id}` is not a UUID")))?;
    sqlx::query(
        "with stored as (update user_credentials set password_hash = $2 where user_id = $1) \
         update sessions set revoked_at = now() \
          where user_id = $1 and revoked_at is null and id is distinct from $3",
    )
    .bind(user_id)
    .bind(credential.password_hash)
    .bind(credential.keep_session)
    .execute(conn)
    .await?;
    Ok(())
}
