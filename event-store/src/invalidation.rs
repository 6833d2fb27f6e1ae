//! Keeps a process's caches true: listens on `b2b_invalidate` (migration 0013's triggers) and
//! tells each cache what changed. Caches are used only while the listener is connected; when
//! the connection drops they are emptied and bypassed until it is back, because changes made
//! in between were never heard.
//!
//! A write that invalidates (sign-out, a user's roles or password) answers only after
//! [`Invalidations::barrier`]: a notification sent after its commit has been acknowledged by
//! every process listening on the database. Postgres delivers notifications in commit order
//! and each listener handles them in turn before it acknowledges, so by then no replica's
//! cache holds the entry any more: the client's next request fails everywhere, not merely
//! once the other replicas have caught up.
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use sqlx::postgres::PgListener;
use sqlx::PgPool;
use tokio::sync::mpsc;
use uuid::Uuid;

const CHANNEL: &str = "b2b_invalidate";
const BARRIER: &str = "barrier";
/// What every listener answers to a barrier, once it has handled everything before it.
const ACK: &str = "ack";
/// How listeners are told apart in `pg_stat_activity`, so a barrier knows how many answers
/// to wait for.
const LISTENER_NAME: &str = "b2b-cache-listener";
/// What projectors announce after a batch commits: the streams it moved (read-your-writes
/// waiters listen for it).
pub const PROJECTED: &str = "projected";
/// The longest a write waits for its barrier; past it the reply goes out regardless.
const BARRIER_WAIT: Duration = Duration::from_secs(2);

/// What a cache hears.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalidation<'a> {
    /// The listener (re)connected (`true`) or lost its connection (`false`). Either way,
    /// everything cached is suspect.
    Live(bool),
    /// `kind` (`session`, `user`, `policy`, `api_key`) `id` changed.
    Changed { kind: &'a str, id: Uuid },
}

type Handler = Box<dyn Fn(Invalidation<'_>) + Send + Sync>;

pub struct Invalidations {
    pool: PgPool,
    handlers: Vec<Handler>,
    live: AtomicBool,
    /// This process's barriers waiting for answers, by id.
    barriers: Mutex<HashMap<Uuid, mpsc::UnboundedSender<()>>>,
}

impl Invalidations {
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            handlers: Vec::new(),
            live: AtomicBool::new(false),
            barriers: Mutex::new(HashMap::new()),
        }
    }

    /// Announces, after the fact, that `kind` changed for `ids` (several per notification, in
    /// chunks that fit Postgres's payload limit). Outside any transaction: a notifying commit
    /// holds a database-wide lock, which here is held without a WAL flush.
    pub async fn announce(pool: &PgPool, kind: &str, ids: &[Uuid]) -> Result<(), sqlx::Error> {
        // 37 bytes per id; the payload limit is 8,000 bytes.
        for chunk in ids.chunks(200) {
            let ids: Vec<String> = chunk.iter().map(Uuid::to_string).collect();
            sqlx::query("select pg_notify($1, $2)")
                .bind(CHANNEL)
                .bind(format!("{kind}:{}", ids.join(",")))
                .execute(pool)
                .await?;
        }
        Ok(())
    }

    /// Adds a cache to tell.
    pub fn on_change(mut self, handler: impl Fn(Invalidation<'_>) + Send + Sync + 'static) -> Self {
        self.handlers.push(Box::new(handler));
        self
    }

    /// Returns once every process listening on the database has handled every notification
    /// committed before this call (or at once when this process's listener is down: its
    /// caches are bypassed then).
    pub async fn barrier(&self) {
        if !self.live.load(Ordering::Acquire) {
            return;
        }
        let id = Uuid::new_v4();
        let (answered, mut answers) = mpsc::unbounded_channel();
        self.barriers
            .lock()
            .expect("barriers poisoned")
            .insert(id, answered);
        // Counted before the notification: a listener that connects in between empties its
        // caches on connecting, and its extra answer does no harm.
        if let Ok(listeners) = self.send_barrier(id).await {
            let all_answered = async {
                for _ in 0..listeners {
                    answers.recv().await;
                }
            };
            if tokio::time::timeout(BARRIER_WAIT, all_answered)
                .await
                .is_err()
            {
                tracing::warn!(listeners, "cache invalidation barrier timed out");
            }
        }
        self.barriers.lock().expect("barriers poisoned").remove(&id);
    }

    /// Notifies `barrier:<id>` and returns how many listeners will answer it.
    async fn send_barrier(&self, id: Uuid) -> Result<i64, sqlx::Error> {
        let listeners: i64 = sqlx::query_scalar(
            "select count(*) from pg_stat_activity \
             where datname = current_database() and application_name = $1",
        )
        .bind(LISTENER_NAME)
        .fetch_one(&self.pool)
        .await?;
        sqlx::query("select pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(format!("{BARRIER}:{id}"))
            .execute(&self.pool)
            .await?;
        Ok(listeners)
    }

    /// Runs the listener until the task is dropped, reconnecting after any failure.
    pub async fn run(self: std::sync::Arc<Self>) {
        loop {
            match self.listen().await {
                Ok(()) => tracing::warn!("cache invalidation listener lost its connection"),
                Err(error) => tracing::warn!(%error, "cache invalidation listener failed"),
            }
            self.set_live(false);
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    async fn listen(&self) -> Result<(), sqlx::Error> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        sqlx::query(&format!("set application_name = '{LISTENER_NAME}'"))
            .execute(&mut listener)
            .await?;
        listener.listen(CHANNEL).await?;
        self.set_live(true);
        // `None`: the connection was lost, and whatever was notified meanwhile with it.
        while let Some(notification) = listener.try_recv().await? {
            if let Some(barrier) = self.heard(notification.payload()) {
                // Everything notified before the barrier has been handled above.
                sqlx::query("select pg_notify($1, $2)")
                    .bind(CHANNEL)
                    .bind(format!("{ACK}:{barrier}"))
                    .execute(&mut listener)
                    .await?;
            }
        }
        Ok(())
    }

    fn set_live(&self, live: bool) {
        self.live.store(live, Ordering::Release);
        self.tell(Invalidation::Live(live));
    }

    /// `<kind>:<id>[,<id>…]`. Returns the barrier to answer, if `payload` is one.
    fn heard(&self, payload: &str) -> Option<Uuid> {
        let parsed = payload.split_once(':').and_then(|(kind, ids)| {
            let ids: Option<Vec<Uuid>> = ids.split(',').map(|id| id.parse().ok()).collect();
            Some((kind, ids?))
        });
        let Some((kind, ids)) = parsed else {
            tracing::warn!(payload, "unreadable invalidation; emptying every cache");
            self.tell(Invalidation::Live(true));
            return None;
        };
        match kind {
            BARRIER => return ids.first().copied(),
            ACK => {
                let barriers = self.barriers.lock().expect("barriers poisoned");
                for waiting in ids.iter().filter_map(|id| barriers.get(id)) {
                    let _ = waiting.send(());
                }
            }
            kind => {
                for id in ids {
                    self.tell(Invalidation::Changed { kind, id });
                }
            }
        }
        None
    }

    fn tell(&self, invalidation: Invalidation<'_>) {
        for handler in &self.handlers {
            handler(invalidation);
        }
    }
}
