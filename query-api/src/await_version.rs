//! Read-your-writes. A command answers with `<id>@<version>`; a query that sends it back in
//! `X-Await-Version` waits until every read model fed by that aggregate has applied that
//! version, so the client sees its own write or learns (STALE_READ) that it would not.
//!
//! With [`ProjectedSignals`] (what the binary runs), a waiter reads the checkpoints again only
//! when a projector announces a batch holding its stream (`projected:<ids>` on the process's
//! invalidation listener), or every `FALLBACK_CHECK` in case an announcement was lost; and the
//! waiters are capped, beyond which a request is refused (503 with `Retry-After`). Without it
//! (library tests) the checkpoints are polled.
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use cqrs_es::Aggregate;
use event_store::invalidation::PROJECTED;
use event_store::Invalidation;
use sqlx::PgPool;
use tokio::sync::{Notify, Semaphore};
use uuid::Uuid;

use crate::{AwaitTargets, QueryError};

pub const HEADER: &str = "X-Await-Version";

/// How often the checkpoints are read while waiting without signals.
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// How often a signalled waiter looks anyway, in case an announcement was lost (a projector
/// that crashed between its commit and its announcement).
const FALLBACK_CHECK: Duration = Duration::from_millis(250);
/// How often a signalled waiter looks when the checkpoints are read from a standby: the
/// announcement comes from the primary, and the standby replays the commit a moment later.
const STANDBY_CHECK: Duration = Duration::from_millis(10);

/// Where the checkpoints are read: the primary, or a streaming standby that follows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadFrom {
    Primary,
    Standby,
}

/// Wakes the requests waiting for a stream when a projector announces it, and caps how many
/// may wait at once.
pub struct ProjectedSignals {
    waiting: Mutex<HashMap<Uuid, Weak<Notify>>>,
    slots: Semaphore,
}

impl ProjectedSignals {
    pub fn new(max_waiters: usize) -> Self {
        Self {
            waiting: Mutex::new(HashMap::new()),
            slots: Semaphore::new(max_waiters),
        }
    }

    /// What the invalidation listener hears: a projected stream wakes its waiters; a
    /// (re)connection wakes every waiter, since announcements may have been missed.
    pub fn hear(&self, change: Invalidation<'_>) {
        let waiting = self.waiting.lock().expect("signals poisoned");
        let wake = |notify: &Weak<Notify>| {
            if let Some(notify) = notify.upgrade() {
                notify.notify_waiters();
            }
        };
        match change {
            Invalidation::Changed {
                kind: PROJECTED,
                id,
            } => waiting.get(&id).into_iter().for_each(wake),
            Invalidation::Live(_) => waiting.values().for_each(wake),
            Invalidation::Changed { .. } => {}
        }
    }

    /// The stream's wake-up, shared by everyone waiting for it.
    fn subscribe(&self, aggregate_id: Uuid) -> Arc<Notify> {
        let mut waiting = self.waiting.lock().expect("signals poisoned");
        waiting.retain(|_, notify| notify.strong_count() > 0);
        if let Some(notify) = waiting.get(&aggregate_id).and_then(Weak::upgrade) {
            return notify;
        }
        let notify = Arc::new(Notify::new());
        waiting.insert(aggregate_id, Arc::downgrade(&notify));
        notify
    }
}

/// A parsed `X-Await-Version: <uuid>@<version>` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AwaitVersion {
    pub aggregate_id: Uuid,
    pub version: i64,
}

impl FromStr for AwaitVersion {
    type Err = QueryError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let malformed =
            || QueryError::BadRequest(format!("{HEADER} must look like `<uuid>@<version>`"));
        let (id, version) = value.trim().split_once('@').ok_or_else(malformed)?;
        let aggregate_id = Uuid::parse_str(id).map_err(|_| malformed())?;
        let version: i64 = version.parse().map_err(|_| malformed())?;
        if version < 1 {
            return Err(malformed());
        }
        Ok(Self {
            aggregate_id,
            version,
        })
    }
}

/// Where [`wait_for`] looks: the aggregate's type on the primary (a stream just created may
/// not have reached a standby yet), the checkpoints where the request's reads will run.
pub struct Pools<'a> {
    pub primary: &'a PgPool,
    pub reads: &'a PgPool,
    pub read_from: ReadFrom,
}

/// Waits until the read models fed by the target's aggregate have reached its version.
/// Runs on the pools, outside the request's transaction, so the wait holds no snapshot and the
/// transaction that follows (read committed) sees what the projectors committed meanwhile.
pub async fn wait_for(
    pools: Pools<'_>,
    tenant_id: Uuid,
    target: AwaitVersion,
    projections_fed_by: &AwaitTargets,
    timeout: Duration,
    signals: Option<&ProjectedSignals>,
) -> Result<(), QueryError> {
    let stale = || {
        QueryError::StaleRead(format!(
            "the read models did not reach {}@{} within {} ms",
            target.aggregate_id,
            target.version,
            timeout.as_millis()
        ))
    };
    // An id of another tenant is "unknown" here, exactly like one that does not exist.
    let aggregate_type = aggregate_type_of(pools.primary, tenant_id, target.aggregate_id)
        .await?
        .ok_or_else(stale)?;
    let projections = projections_fed_by(&aggregate_type);
    let checks = Checks {
        pool: pools.reads,
        aggregate_type: &aggregate_type,
        target,
        projections: &projections,
        recheck: match pools.read_from {
            ReadFrom::Primary => FALLBACK_CHECK,
            ReadFrom::Standby => STANDBY_CHECK,
        },
    };
    let waited = match signals {
        Some(signals) => {
            let _slot = signals.slots.try_acquire().map_err(|_| QueryError::Busy {
                detail: "too many requests are waiting for their writes to be read".into(),
                retry_after: 1,
            })?;
            tokio::time::timeout(timeout, checks.on_signal(signals)).await
        }
        None => tokio::time::timeout(timeout, checks.poll()).await,
    };
    waited.map_err(|_| stale())?
}

const AGGREGATE_TYPES: [&str; 5] = [
    aggregates::account::Account::TYPE,
    aggregates::user::User::TYPE,
    aggregates::quote::Quote::TYPE,
    aggregates::approval::Approval::TYPE,
    aggregates::contract::Contract::TYPE,
];

async fn aggregate_type_of(
    pool: &PgPool,
    tenant_id: Uuid,
    aggregate_id: Uuid,
) -> Result<Option<String>, QueryError> {
    // Probes the primary key once per aggregate type, so appends need no index on the id alone.
    let mut tx = event_store::db::begin_read_only_for_tenant(pool, tenant_id).await?;
    let found = sqlx::query_scalar(
        "select aggregate_type from events where aggregate_type = any($3) \
         and aggregate_id = $1 and sequence = 1 and tenant_id = $2 limit 1",
    )
    .bind(aggregate_id.to_string())
    .bind(tenant_id)
    .bind(AGGREGATE_TYPES)
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(found)
}

/// Reading the checkpoints of one target, again and again.
struct Checks<'a> {
    pool: &'a PgPool,
    aggregate_type: &'a str,
    target: AwaitVersion,
    projections: &'a [&'static str],
    /// The longest a signalled waiter goes without looking.
    recheck: Duration,
}

impl Checks<'_> {
    async fn caught_up(&self) -> Result<bool, QueryError> {
        caught_up(
            self.pool,
            self.aggregate_type,
            self.target,
            self.projections,
        )
        .await
    }

    async fn poll(&self) -> Result<(), QueryError> {
        while !self.caught_up().await? {
            tokio::time::sleep(POLL_INTERVAL).await;
        }
        Ok(())
    }

    /// Checks when the stream is announced (registered before each check, so an announcement
    /// between the check and the wait is not missed), or after `recheck`.
    async fn on_signal(&self, signals: &ProjectedSignals) -> Result<(), QueryError> {
        let notify = signals.subscribe(self.target.aggregate_id);
        loop {
            let announced = notify.notified();
            tokio::pin!(announced);
            announced.as_mut().enable();
            if self.caught_up().await? {
                return Ok(());
            }
            tokio::select! {
                _ = announced => {}
                _ = tokio::time::sleep(self.recheck) => {}
            }
        }
    }
}

/// True when every one of `projections` has applied `target.version` of the stream. A
/// projection that has never seen the stream has no row, so it counts as behind.
async fn caught_up(
    pool: &PgPool,
    aggregate_type: &str,
    target: AwaitVersion,
    projections: &[&'static str],
) -> Result<bool, QueryError> {
    let mut wanted: Vec<&str> = projections.to_vec();
    wanted.sort_unstable();
    wanted.dedup();
    if wanted.is_empty() {
        return Ok(true);
    }
    let done: i64 = sqlx::query_scalar(
        "select count(*) from projection_checkpoints \
         where projection = any($1) and aggregate_type = $2 and aggregate_id = $3 \
           and last_sequence >= $4",
    )
    .bind(&wanted)
    .bind(aggregate_type)
    .bind(target.aggregate_id.to_string())
    .bind(target.version)
    .fetch_one(pool)
    .await?;
    Ok(done == wanted.len() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0b6f7c52-51c4-4c1e-9f5e-3d1f2a9f8e10";

    #[test]
    fn a_well_formed_header_parses_into_id_and_version() {
        let parsed: AwaitVersion = format!("{ID}@3").parse().unwrap();
        assert_eq!(parsed.aggregate_id, Uuid::parse_str(ID).unwrap());
        assert_eq!(parsed.version, 3);
    }

    #[test]
    fn surrounding_whitespace_is_tolerated() {
        let parsed: AwaitVersion = format!("  {ID}@12 ").parse().unwrap();
        assert_eq!(parsed.version, 12);
    }

    #[test]
    fn malformed_headers_are_bad_requests() {
        let cases = [
            String::new(),
            ID.to_owned(),
            format!("{ID}@"),
            format!("{ID}@x"),
            format!("{ID}@0"),
            format!("{ID}@-1"),
            format!("{ID}@1@2"),
            "not-a-uuid@1".to_owned(),
            format!("@{ID}"),
        ];
        for case in cases {
            let err = case.parse::<AwaitVersion>().unwrap_err();
            assert_eq!(err.code(), "BAD_REQUEST", "{case:?}");
        }
    }
}
