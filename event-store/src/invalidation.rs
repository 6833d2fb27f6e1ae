//! Keeps a process's caches true: listens on `b2b_invalidate` (migration 0013's triggers) and
//! tells each cache what changed. Caches are used only while the listener is connected; when
//! the connection drops they are emptied and bypassed until it is back, because changes made
//! in between were never heard.
//!
//! A write that invalidates (sign-out, a user's roles or password) answers only after
//! [`Invalidations::barrier`]: a notification sent after its commit has been acknowledged by
//! every listener that was listening on the database when it was sent (each answers with its
//! backend's pid). Postgres delivers notifications in commit order and each listener handles
//! them in turn before it answers, so by then no replica's cache holds the entry any more: the
//! client's next request fails everywhere, not merely once the other replicas have caught up.
//! A listener that does not answer within [`BARRIER_WAIT`] (a frozen process) is waited for no
//! longer: the write answers, and that replica forgets when it resumes.
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use sqlx::postgres::{PgListener, PgPoolOptions};
use sqlx::PgPool;
use tokio::sync::mpsc;
use uuid::Uuid;

const CHANNEL: &str = "b2b_invalidate";
const BARRIER: &str = "barrier";
/// What every listener answers to a barrier, once it has handled everything before it.
const ACK: &str = "ack";
/// How listeners are told apart in `pg_stat_activity`, so a barrier knows whose answers to
/// wait for. Set once the connection listens, on a connection used for nothing else.
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
    /// This process's barriers waiting for answers, by id: the answering listeners' pids.
    barriers: Mutex<HashMap<Uuid, mpsc::UnboundedSender<i32>>>,
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
        // Listeners are named only once they listen, so each one counted hears the barrier; one
        // that starts listening later empties its caches on connecting and is not waited for.
        if let Ok(mut waiting) = self.send_barrier(id).await {
            let all_answered = async {
                while !waiting.is_empty() {
                    match answers.recv().await {
                        Some(pid) => waiting.remove(&pid),
                        None => break,
                    };
                }
            };
            if tokio::time::timeout(BARRIER_WAIT, all_answered)
                .await
                .is_err()
            {
                tracing::warn!("cache invalidation barrier timed out");
            }
        }
        self.barriers.lock().expect("barriers poisoned").remove(&id);
    }

    /// Notifies `barrier:<id>` and returns the pids of the listeners that will answer it.
    async fn send_barrier(&self, id: Uuid) -> Result<HashSet<i32>, sqlx::Error> {
        let listeners: Vec<i32> = sqlx::query_scalar(
            "select pid from pg_stat_activity \
             where datname = current_database() and application_name = $1",
        )
        .bind(LISTENER_NAME)
        .fetch_all(&self.pool)
        .await?;
        sqlx::query("select pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(format!("{BARRIER}:{id}"))
            .execute(&self.pool)
            .await?;
        Ok(listeners.into_iter().collect())
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
        // A connection of its own, never handed back to the shared pool with the listener's
        // name on it.
        let own = PgPoolOptions::new()
            .max_connections(1)
            .connect_lazy_with((*self.pool.connect_options()).clone());
        let mut listener = PgListener::connect_with(&own).await?;
        listener.listen(CHANNEL).await?;
        let pid: i32 = sqlx::query_scalar(&format!(
            "select pg_backend_pid() from set_config('application_name', '{LISTENER_NAME}', false)"
        ))
        .fetch_one(&mut listener)
        .await?;
        self.set_live(true);
        // `None`: the connection was lost, and whatever was notified meanwhile with it.
        while let Some(notification) = listener.try_recv().await? {
            if let Some(barrier) = self.heard(notification.payload()) {
                // Everything notified before the barrier has been handled above.
                sqlx::query("select pg_notify($1, $2)")
                    .bind(CHANNEL)
                    .bind(format!("{ACK}:{barrier}:{pid}"))
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

    /// `<kind>:<id>[,<id>…]`, or `ack:<barrier>:<pid>`. Returns the barrier to answer, if
    /// `payload` is one.
    fn heard(&self, payload: &str) -> Option<Uuid> {
        if let Some(ack) = payload.strip_prefix(ACK).and_then(|a| a.strip_prefix(':')) {
            self.acknowledged(ack);
            return None;
        }
        let parsed = payload.split_once(':').and_then(|(kind, ids)| {
            let ids: Option<Vec<Uuid>> = ids.split(',').map(|id| id.parse().ok()).collect();
            Some((kind, ids?))
        });
        let Some((kind, ids)) = parsed else {
            tracing::warn!(payload, "unreadable invalidation; emptying every cache");
            self.tell(Invalidation::Live(true));
            return None;
        };
        if kind == BARRIER {
            return ids.first().copied();
        }
        for id in ids {
            self.tell(Invalidation::Changed { kind, id });
        }
        None
    }

    /// `<barrier>:<pid>`: that listener has handled everything up to this process's barrier.
    fn acknowledged(&self, ack: &str) {
        let Some((barrier, pid)) = ack.split_once(':') else {
            return;
        };
        let (Ok(barrier), Ok(pid)) = (barrier.parse::<Uuid>(), pid.parse::<i32>()) else {
            return;
        };
        if let Some(waiting) = self
            .barriers
            .lock()
            .expect("barriers poisoned")
            .get(&barrier)
        {
            let _ = waiting.send(pid);
        }
    }

    fn tell(&self, invalidation: Invalidation<'_>) {
        for handler in &self.handlers {
            handler(invalidation);
        }
    }
}
