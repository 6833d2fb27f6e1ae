//! The process's register of live subscriptions and connections, fed by what the invalidation
//! listener hears: a projector's `projected:<ids>` announcement (sent after its batch
//! commits) becomes a signal to the subscriptions of the tenant whose streams moved; a
//! `session`, `api_key` or `user` change closes the connections it concerns.
//!
//! Bounded everywhere: at most `per_user` subscriptions per user and `per_process` in all, and
//! each subscription's signals wait in a channel of `buffer` places. A subscription whose
//! channel is full is dropped (its client reads too slowly), never buffered without limit.
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use aggregates::{approval::Approval, contract::Contract, quote::Quote};
use auth::Claims;
use cqrs_es::Aggregate;
use event_store::invalidation::PROJECTED;
use event_store::Invalidation;
use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::QueryError;

/// The caps, from the process's configuration.
#[derive(Debug, Clone, Copy)]
pub struct SubscriptionLimits {
    /// Subscriptions one user (or API key) may hold at once, over all their connections.
    pub per_user: usize,
    /// Subscriptions this process serves at once.
    pub per_process: usize,
    /// Signals that may wait for one subscription before it is dropped as too slow.
    pub buffer: usize,
}

impl Default for SubscriptionLimits {
    fn default() -> Self {
        Self {
            per_user: 20,
            per_process: 10_000,
            buffer: 256,
        }
    }
}

/// Which aggregates a subscription follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Quote,
    Approval,
    Contract,
}

impl Kind {
    const ALL: [Kind; 3] = [Kind::Quote, Kind::Approval, Kind::Contract];

    pub fn aggregate_type(self) -> &'static str {
        match self {
            Self::Quote => Quote::TYPE,
            Self::Approval => Approval::TYPE,
            Self::Contract => Contract::TYPE,
        }
    }

    pub fn of_type(aggregate_type: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.aggregate_type() == aggregate_type)
    }
}

/// What a subscription is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// A projector committed a change to this aggregate of the subscriber's tenant.
    Changed { kind: Kind, id: Uuid },
    /// Announcements may have been missed (the listener reconnected, or the dispatcher fell
    /// behind): the client should resume from its last cursor or re-read.
    Resync(&'static str),
}

/// Why the server closes a connection (a WebSocket close code and reason).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closing {
    pub code: u16,
    pub reason: &'static str,
}

struct Subscriber {
    tenant: Uuid,
    user: Uuid,
    kinds: HashSet<Kind>,
    signals: mpsc::Sender<Signal>,
}

struct Connection {
    session: Uuid,
    user: Uuid,
    close: oneshot::Sender<Closing>,
}

#[derive(Default)]
struct Registry {
    subscribers: HashMap<u64, Subscriber>,
    connections: HashMap<u64, Connection>,
    /// The sessions, keys and users revoked lately, numbered: a connection admitted while one
    /// of them was heard (between its admission and its registration) is closed all the same.
    revoked: VecDeque<(u64, Uuid)>,
    revocations: u64,
}

/// Revocations remembered for connections being admitted (a few milliseconds' worth).
const REMEMBERED_REVOCATIONS: usize = 1024;

/// Batches of projected ids waiting for the dispatcher; more than this and the dispatcher is
/// behind, so the batch is dropped and everyone told to resync.
const PENDING_BATCHES: usize = 1024;

pub struct SubscriptionHub {
    limits: SubscriptionLimits,
    registry: Mutex<Registry>,
    next_id: AtomicU64,
    projected: mpsc::Sender<Vec<Uuid>>,
    dispatcher: Mutex<Option<mpsc::Receiver<Vec<Uuid>>>>,
    /// Whether the invalidation listener lost its connection since it was last live.
    lost_listener: std::sync::atomic::AtomicBool,
}

impl SubscriptionHub {
    pub fn new(limits: SubscriptionLimits) -> Arc<Self> {
        let (projected, dispatcher) = mpsc::channel(PENDING_BATCHES);
        Arc::new(Self {
            limits,
            registry: Mutex::new(Registry::default()),
            next_id: AtomicU64::new(1),
            projected,
            dispatcher: Mutex::new(Some(dispatcher)),
            lost_listener: std::sync::atomic::AtomicBool::new(false),
        })
    }

    pub fn limits(&self) -> SubscriptionLimits {
        self.limits
    }

    /// What the invalidation listener hears. Never blocks: projected ids go to the
    /// dispatcher's queue.
    pub fn hear(&self, change: Invalidation<'_>) {
        match change {
            Invalidation::Changed {
                kind: PROJECTED,
                id,
            } => {
                if self.projected.try_send(vec![id]).is_err() {
                    self.broadcast(Signal::Resync("the server fell behind its change feed"));
                }
            }
            Invalidation::Changed {
                kind: "session" | "api_key",
                id,
            } => self.close_where(
                id,
                |c| c.session == id,
                Closing {
                    code: 4403,
                    reason: "the session or API key was revoked",
                },
            ),
            Invalidation::Changed { kind: "user", id } => self.close_where(
                id,
                |c| c.user == id,
                Closing {
                    code: 4403,
                    reason: "the user changed (roles, account, password or deactivated); \
                             sign in again",
                },
            ),
            Invalidation::Changed { .. } => {}
            Invalidation::Live(false) => self.lost_listener.store(true, Ordering::Release),
            Invalidation::Live(true) => {
                if self.lost_listener.swap(false, Ordering::AcqRel) {
                    self.broadcast(Signal::Resync(
                        "the server's change feed reconnected; changes may have been missed",
                    ));
                }
            }
        }
    }

    /// Turns projected ids into signals for the subscriptions of their tenants, until the
    /// process stops. One tenant-scoped statement per tenant with subscribers per batch.
    pub async fn dispatch(self: Arc<Self>, pool: PgPool) {
        let Some(mut queue) = self.dispatcher.lock().expect("hub poisoned").take() else {
            return;
        };
        while let Some(first) = queue.recv().await {
            let mut ids = first;
            // Announcements arrive one id at a time; take whatever else is waiting too.
            while let Ok(more) = queue.try_recv() {
                ids.extend(more);
            }
            ids.sort_unstable();
            ids.dedup();
            for tenant in self.tenants() {
                match streams_of(&pool, tenant, &ids).await {
                    Ok(found) => self.deliver(tenant, &found),
                    Err(error) => {
                        tracing::warn!(%error, %tenant, "could not resolve projected streams");
                        self.broadcast(Signal::Resync("the server could not read its changes"));
                    }
                }
            }
        }
    }

    fn tenants(&self) -> HashSet<Uuid> {
        let registry = self.registry.lock().expect("hub poisoned");
        registry.subscribers.values().map(|s| s.tenant).collect()
    }

    fn deliver(&self, tenant: Uuid, found: &[(Kind, Uuid)]) {
        if found.is_empty() {
            return;
        }
        let mut registry = self.registry.lock().expect("hub poisoned");
        let mut slow = Vec::new();
        for (key, subscriber) in &registry.subscribers {
            if subscriber.tenant != tenant {
                continue;
            }
            for &(kind, id) in found.iter().filter(|(k, _)| subscriber.kinds.contains(k)) {
                if subscriber
                    .signals
                    .try_send(Signal::Changed { kind, id })
                    .is_err()
                {
                    slow.push(*key);
                    break;
                }
            }
        }
        for key in slow {
            // Dropping the sender ends the subscription once it has read what is queued.
            registry.subscribers.remove(&key);
            metrics::counter!("b2b_subscriptions_dropped_total", "reason" => "slow").increment(1);
        }
        set_gauge(&registry);
    }

    fn broadcast(&self, signal: Signal) {
        let registry = self.registry.lock().expect("hub poisoned");
        for subscriber in registry.subscribers.values() {
            // A full channel gets the news when the subscription is dropped for it anyway.
            let _ = subscriber.signals.try_send(signal);
        }
    }

    fn close_where(&self, id: Uuid, matches: impl Fn(&Connection) -> bool, closing: Closing) {
        let mut registry = self.registry.lock().expect("hub poisoned");
        registry.revocations += 1;
        let number = registry.revocations;
        if registry.revoked.len() == REMEMBERED_REVOCATIONS {
            registry.revoked.pop_front();
        }
        registry.revoked.push_back((number, id));
        let keys: Vec<u64> = registry
            .connections
            .iter()
            .filter(|(_, c)| matches(c))
            .map(|(key, _)| *key)
            .collect();
        for key in keys {
            if let Some(connection) = registry.connections.remove(&key) {
                let _ = connection.close.send(closing);
                metrics::counter!("b2b_subscriptions_dropped_total", "reason" => "revoked")
                    .increment(1);
            }
        }
    }

    /// Where revocations stand: take it before admitting a connection, and hand it to
    /// [`Self::connect`].
    pub fn revocations(&self) -> u64 {
        self.registry.lock().expect("hub poisoned").revocations
    }

    /// Registers a connection admitted after `revocations` (see [`Self::revocations`]): the
    /// receiver hears why the server closes it, at once if its session, key or user was
    /// revoked meanwhile (or too much was revoked since to tell).
    pub fn connect(
        self: &Arc<Self>,
        claims: &Claims,
        revocations: u64,
    ) -> (ConnectionGuard, oneshot::Receiver<Closing>) {
        let key = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (close, closed) = oneshot::channel();
        let mut registry = self.registry.lock().expect("hub poisoned");
        let forgotten = registry
            .revoked
            .front()
            .is_some_and(|(first, _)| *first > revocations + 1);
        let revoked = registry
            .revoked
            .iter()
            .any(|(n, id)| *n > revocations && (*id == claims.sid || *id == claims.sub));
        if revoked || forgotten {
            let _ = close.send(Closing {
                code: 4403,
                reason: "the session or API key was revoked",
            });
        } else {
            let connection = Connection {
                session: claims.sid,
                user: claims.sub,
                close,
            };
            registry.connections.insert(key, connection);
        }
        let guard = ConnectionGuard {
            hub: self.clone(),
            key,
        };
        (guard, closed)
    }

    /// Starts a subscription for `claims`, within the caps.
    pub fn subscribe(
        self: &Arc<Self>,
        claims: &Claims,
        kinds: HashSet<Kind>,
    ) -> Result<Registration, QueryError> {
        let mut registry = self.registry.lock().expect("hub poisoned");
        let mine = registry
            .subscribers
            .values()
            .filter(|s| s.user == claims.sub)
            .count();
        if mine >= self.limits.per_user {
            return Err(QueryError::TooManyRequests {
                detail: format!(
                    "at most {} subscriptions per user at once; complete one first",
                    self.limits.per_user
                ),
                retry_after: 1,
            });
        }
        if registry.subscribers.len() >= self.limits.per_process {
            return Err(QueryError::Busy {
                detail: "this server holds as many subscriptions as it may".into(),
                retry_after: 5,
            });
        }
        let key = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (signals, receiver) = mpsc::channel(self.limits.buffer.max(1));
        registry.subscribers.insert(
            key,
            Subscriber {
                tenant: claims.tid,
                user: claims.sub,
                kinds,
                signals,
            },
        );
        set_gauge(&registry);
        Ok(Registration {
            hub: self.clone(),
            key,
            signals: receiver,
        })
    }

    /// Subscriptions held now.
    pub fn active(&self) -> usize {
        self.registry
            .lock()
            .expect("hub poisoned")
            .subscribers
            .len()
    }
}

fn set_gauge(registry: &Registry) {
    metrics::gauge!("b2b_subscriptions_active").set(registry.subscribers.len() as f64);
}

/// Which of `ids` are quotes, approvals or contracts of `tenant` (the others are another
/// tenant's, or aggregates no subscription follows).
async fn streams_of(
    pool: &PgPool,
    tenant: Uuid,
    ids: &[Uuid],
) -> Result<Vec<(Kind, Uuid)>, sqlx::Error> {
    let types: Vec<&str> = Kind::ALL.iter().map(|k| k.aggregate_type()).collect();
    let ids: Vec<String> = ids.iter().map(Uuid::to_string).collect();
    let mut tx = event_store::db::begin_read_only_for_tenant_planned(pool, tenant).await?;
    let rows: Vec<(String, String)> = sqlx::query_as(
        "select aggregate_type, aggregate_id from events where aggregate_type = any($1) \
         and aggregate_id = any($2) and sequence = 1 and tenant_id = $3",
    )
    .bind(&types)
    .bind(&ids)
    .bind(tenant)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(rows
        .into_iter()
        .filter_map(|(t, id)| Some((Kind::of_type(&t)?, id.parse().ok()?)))
        .collect())
}

/// A live connection in the register; leaves it when dropped.
pub struct ConnectionGuard {
    hub: Arc<SubscriptionHub>,
    key: u64,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        let mut registry = self.hub.registry.lock().expect("hub poisoned");
        registry.connections.remove(&self.key);
    }
}

/// A live subscription's signals; leaves the register when dropped.
pub struct Registration {
    hub: Arc<SubscriptionHub>,
    key: u64,
    signals: mpsc::Receiver<Signal>,
}

impl Registration {
    /// The next signal; `None` once the subscription was dropped for reading too slowly.
    pub async fn next(&mut self) -> Option<Signal> {
        self.signals.recv().await
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut registry = self.hub.registry.lock().expect("hub poisoned");
        registry.subscribers.remove(&self.key);
        set_gauge(&registry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(user: Uuid, session: Uuid, tenant: Uuid) -> Claims {
        Claims {
            sub: user,
            sid: session,
            tid: tenant,
            tenant: "t".into(),
            email: "u@t.test".into(),
            roles: vec![aggregates::Role::Manager],
            account_id: None,
            exp: 0,
            iat: 0,
            api_key: false,
        }
    }

    fn hub(per_user: usize, per_process: usize, buffer: usize) -> Arc<SubscriptionHub> {
        SubscriptionHub::new(SubscriptionLimits {
            per_user,
            per_process,
            buffer,
        })
    }

    fn quotes() -> HashSet<Kind> {
        [Kind::Quote].into()
    }

    #[test]
    fn the_caps_refuse_beyond_their_limit_and_free_a_place_when_a_subscription_ends() {
        let hub = hub(1, 2, 8);
        let tenant = Uuid::new_v4();
        let alice = claims(Uuid::new_v4(), Uuid::new_v4(), tenant);
        let bob = claims(Uuid::new_v4(), Uuid::new_v4(), tenant);
        let carol = claims(Uuid::new_v4(), Uuid::new_v4(), tenant);
        let first = hub.subscribe(&alice, quotes()).unwrap();
        let refused = hub.subscribe(&alice, quotes()).err().unwrap();
        assert_eq!(refused.code(), "TOO_MANY_REQUESTS");
        let _second = hub.subscribe(&bob, quotes()).unwrap();
        let full = hub.subscribe(&carol, quotes()).err().unwrap();
        assert_eq!(full.code(), "SERVICE_UNAVAILABLE");
        assert_eq!(hub.active(), 2);
        drop(first);
        assert_eq!(hub.active(), 1);
        assert!(hub.subscribe(&alice, quotes()).is_ok());
    }

    #[tokio::test]
    async fn a_subscriber_that_falls_behind_its_buffer_is_dropped_not_buffered() {
        let hub = hub(5, 5, 2);
        let tenant = Uuid::new_v4();
        let mut slow = hub
            .subscribe(&claims(Uuid::new_v4(), Uuid::new_v4(), tenant), quotes())
            .unwrap();
        let ids: Vec<(Kind, Uuid)> = (0..5).map(|_| (Kind::Quote, Uuid::new_v4())).collect();
        hub.deliver(tenant, &ids);
        assert_eq!(hub.active(), 0, "dropped from the register");
        // What fitted is still read, then the feed ends.
        for (kind, id) in &ids[..2] {
            assert_eq!(
                slow.next().await,
                Some(Signal::Changed {
                    kind: *kind,
                    id: *id
                })
            );
        }
        assert_eq!(slow.next().await, None);
    }

    #[tokio::test]
    async fn signals_go_only_to_the_tenant_and_kinds_subscribed() {
        let hub = hub(5, 5, 8);
        let (mine, theirs) = (Uuid::new_v4(), Uuid::new_v4());
        let mut quotes_only = hub
            .subscribe(&claims(Uuid::new_v4(), Uuid::new_v4(), mine), quotes())
            .unwrap();
        let mut other = hub
            .subscribe(&claims(Uuid::new_v4(), Uuid::new_v4(), theirs), quotes())
            .unwrap();
        let (approval, quote) = (Uuid::new_v4(), Uuid::new_v4());
        hub.deliver(mine, &[(Kind::Approval, approval), (Kind::Quote, quote)]);
        let heard = quotes_only.next().await;
        assert_eq!(
            heard,
            Some(Signal::Changed {
                kind: Kind::Quote,
                id: quote
            })
        );
        hub.hear(Invalidation::Live(false));
        hub.hear(Invalidation::Live(true));
        assert!(matches!(quotes_only.next().await, Some(Signal::Resync(_))));
        assert!(
            matches!(other.next().await, Some(Signal::Resync(_))),
            "nothing else first"
        );
    }

    #[test]
    fn a_revoked_session_or_a_changed_user_closes_only_their_connections() {
        let hub = hub(5, 5, 8);
        let tenant = Uuid::new_v4();
        let (user, session) = (Uuid::new_v4(), Uuid::new_v4());
        let (_a, mut revoked) = hub.connect(&claims(user, session, tenant), hub.revocations());
        let other = claims(Uuid::new_v4(), Uuid::new_v4(), tenant);
        let (_b, mut untouched) = hub.connect(&other, hub.revocations());
        hub.hear(Invalidation::Changed {
            kind: "session",
            id: session,
        });
        assert_eq!(revoked.try_recv().unwrap().code, 4403);
        assert!(untouched.try_recv().is_err());
        let (_c, mut changed) =
            hub.connect(&claims(user, Uuid::new_v4(), tenant), hub.revocations());
        hub.hear(Invalidation::Changed {
            kind: "user",
            id: user,
        });
        assert_eq!(changed.try_recv().unwrap().code, 4403);
        assert!(untouched.try_recv().is_err());
    }

    #[test]
    fn a_revocation_heard_while_a_connection_was_being_admitted_closes_it() {
        let hub = hub(5, 5, 8);
        let tenant = Uuid::new_v4();
        let caller = claims(Uuid::new_v4(), Uuid::new_v4(), tenant);
        let before = hub.revocations();
        // Heard after admission began, before the connection was registered.
        hub.hear(Invalidation::Changed {
            kind: "session",
            id: caller.sid,
        });
        let (_a, mut closed) = hub.connect(&caller, before);
        assert_eq!(closed.try_recv().unwrap().code, 4403);
        // Someone else's revocation does not close this one.
        let other = claims(Uuid::new_v4(), Uuid::new_v4(), tenant);
        let (_b, mut open) = hub.connect(&other, before);
        assert!(open.try_recv().is_err());
    }
}
