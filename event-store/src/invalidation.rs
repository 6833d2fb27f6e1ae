//! Keeps a process's caches true: listens on `b2b_invalidate` (migration 0013's triggers) and
//! tells each cache what changed. Caches are used only while the listener is connected; when
//! the connection drops they are emptied and bypassed until it is back, because changes made
//! in between were never heard.
//!
//! A write that invalidates (sign-out, a user's roles or password) answers only after
//! [`Invalidations::barrier`]: a notification sent after its commit has come back to this
//! process. Postgres delivers notifications in commit order to every listener at once, so by
//! then this process's caches have dropped the entry and every other replica's listener has
//! been sent the change.
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use sqlx::postgres::PgListener;
use sqlx::PgPool;
use tokio::sync::oneshot;
use uuid::Uuid;

const CHANNEL: &str = "b2b_invalidate";
const BARRIER: &str = "barrier";
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
    barriers: Mutex<HashMap<Uuid, oneshot::Sender<()>>>,
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

    /// Returns once every notification committed before this call has reached this process
    /// (or at once when the listener is down: the caches are bypassed then).
    pub async fn barrier(&self) {
        if !self.live.load(Ordering::Acquire) {
            return;
        }
        let id = Uuid::new_v4();
        let (sent, arrived) = oneshot::channel();
        self.barriers
            .lock()
            .expect("barriers poisoned")
            .insert(id, sent);
        let notified = sqlx::query("select pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(format!("{BARRIER}:{id}"))
            .execute(&self.pool)
            .await;
        if notified.is_ok() && tokio::time::timeout(BARRIER_WAIT, arrived).await.is_err() {
            tracing::warn!("cache invalidation barrier timed out");
        }
        self.barriers.lock().expect("barriers poisoned").remove(&id);
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
        listener.listen(CHANNEL).await?;
        self.set_live(true);
        // `None`: the connection was lost, and whatever was notified meanwhile with it.
        while let Some(notification) = listener.try_recv().await? {
            self.heard(notification.payload());
        }
        Ok(())
    }

    fn set_live(&self, live: bool) {
        self.live.store(live, Ordering::Release);
        self.tell(Invalidation::Live(live));
    }

    /// `<kind>:<id>[,<id>…]`.
    fn heard(&self, payload: &str) {
        let parsed = payload.split_once(':').and_then(|(kind, ids)| {
            let ids: Option<Vec<Uuid>> = ids.split(',').map(|id| id.parse().ok()).collect();
            Some((kind, ids?))
        });
        let Some((kind, ids)) = parsed else {
            tracing::warn!(payload, "unreadable invalidation; emptying every cache");
            self.tell(Invalidation::Live(true));
            return;
        };
        for id in ids {
            match kind {
                BARRIER => {
                    let mut barriers = self.barriers.lock().expect("barriers poisoned");
                    if let Some(waiting) = barriers.remove(&id) {
                        let _ = waiting.send(());
                    }
                }
                kind => self.tell(Invalidation::Changed { kind, id }),
            }
        }
    }

    fn tell(&self, invalidation: Invalidation<'_>) {
        for handler in &self.handlers {
            handler(invalidation);
        }
    }
}
