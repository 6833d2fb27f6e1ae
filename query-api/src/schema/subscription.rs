//! `subscription { changes … }` and `subscription { pendingForMe … }`: what the projectors
//! commit, pushed to the callers who may see it.
//!
//! A projector's announcement (see [`crate::subscriptions`]) names a stream; the subscription
//! then reads the row through the same functions `quote(id)`, `approval(id)` and
//! `contract(id)` use, with the caller's tenant and Partner scope, in one tenant-scoped
//! transaction (with the row's children and the event's time for its cursor). A row the caller
//! may not see is never sent.
//!
//! Resuming: every message carries a `cursor` (when its version was recorded). A client
//! subscribing with `resumeAfter: <the last cursor it saw>` first gets the current state of
//! every stream it may see that changed from `RESUME_MARGIN` before that cursor on, then the
//! live feed; the live feed is registered first, so nothing falls between the two. A version
//! may arrive twice (clients keep the highest version per id). When more changed than
//! `MAX_REPLAY` streams, or the cursor is older than `MAX_RESUME_AGE`, the answer is one
//! `RESYNC` message: re-read with the queries.
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use async_graphql::{Context, Enum, ErrorExtensions, SimpleObject, Subscription};
use auth::Claims;
use chrono::{DateTime, Duration, Utc};
use futures::Stream;
use sqlx::PgPool;
use uuid::Uuid;

use super::loaders::children;
use super::scope::AccountScope;
use super::{approvals, contracts, quotes, Approval, Contract, Quote};
use crate::subscriptions::{Kind, Registration, Signal, SubscriptionHub};
use crate::{QueryError, TenantTx};

/// How far before a resume cursor the replay starts: a change recorded a little before the
/// last one the client saw may have been projected after it.
pub const RESUME_MARGIN: Duration = Duration::seconds(60);
/// Streams a resume replays at most; beyond, `RESYNC`.
pub const MAX_REPLAY: i64 = 500;
/// The oldest cursor a subscription resumes from; beyond, `RESYNC`.
pub const MAX_RESUME_AGE: Duration = Duration::hours(24);
/// Versions remembered per subscription to skip a version already sent; past it, the memory
/// is cleared (a version may then be sent twice, which clients tolerate).
const REMEMBERED: usize = 4096;

/// What the subscription's connection carries, next to the caller's claims.
#[derive(Clone)]
pub struct Feeds {
    pub hub: Arc<SubscriptionHub>,
    /// Where the rows are read: the primary, which has what the projector announced.
    pub reads: PgPool,
}

/// What a message is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub enum ChangeKind {
    Quote,
    Approval,
    Contract,
    /// The server cannot tell what the client missed (it fell behind, or the resume cursor is
    /// too old or too much changed since): re-read with the queries, then subscribe again.
    Resync,
}

impl From<Kind> for ChangeKind {
    fn from(kind: Kind) -> Self {
        match kind {
            Kind::Quote => Self::Quote,
            Kind::Approval => Self::Approval,
            Kind::Contract => Self::Contract,
        }
    }
}

impl ChangeKind {
    fn followed(self) -> Option<Kind> {
        match self {
            Self::Quote => Some(Kind::Quote),
            Self::Approval => Some(Kind::Approval),
            Self::Contract => Some(Kind::Contract),
            Self::Resync => None,
        }
    }
}

/// One change: the record as it is after the projector's commit, with the stream's version.
#[derive(Debug, Clone, SimpleObject)]
pub struct Change {
    pub kind: ChangeKind,
    /// The quote's, approval's or contract's id; null for `RESYNC`.
    pub aggregate_id: Option<Uuid>,
    /// The last event of the aggregate's stream the record reflects (a contract's
    /// `streamVersion`); a client keeps the highest per id and ignores lower or equal ones.
    pub version: Option<i64>,
    /// Where to resume after this message (`resumeAfter`); null for `RESYNC`.
    pub cursor: Option<String>,
    pub quote: Option<Quote>,
    pub approval: Option<Approval>,
    pub contract: Option<Contract>,
    /// For an approval: whether it is in the caller's `pendingForMe` list now.
    pub pending_for_me: Option<bool>,
    /// For `RESYNC`: why.
    pub reason: Option<String>,
}

impl Change {
    fn resync(reason: impl Into<String>) -> Self {
        Self {
            kind: ChangeKind::Resync,
            aggregate_id: None,
            version: None,
            cursor: None,
            quote: None,
            approval: None,
            contract: None,
            pending_for_me: None,
            reason: Some(reason.into()),
        }
    }

    fn of(kind: ChangeKind, id: Uuid, version: i64, recorded_at: DateTime<Utc>) -> Self {
        Self {
            kind,
            aggregate_id: Some(id),
            version: Some(version),
            cursor: Some(recorded_at.timestamp_micros().to_string()),
            quote: None,
            approval: None,
            contract: None,
            pending_for_me: None,
            reason: None,
        }
    }
}

pub struct SubscriptionRoot;

#[Subscription]
impl SubscriptionRoot {
    /// Quotes, approvals and contracts the caller may see (their tenant's; a Partner, their
    /// account's), each time a projector commits a change to one.
    async fn changes(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "What to follow; all three if omitted.")] kinds: Option<Vec<ChangeKind>>,
        #[graphql(
            desc = "The `cursor` of the last message seen: what changed since is sent \
                          first."
        )]
        resume_after: Option<String>,
    ) -> async_graphql::Result<impl Stream<Item = Change>> {
        let kinds: HashSet<Kind> = match kinds {
            Some(kinds) => kinds.into_iter().filter_map(ChangeKind::followed).collect(),
            None => [Kind::Quote, Kind::Approval, Kind::Contract].into(),
        };
        if kinds.is_empty() {
            let refusal = QueryError::BadUserInput("`kinds` names nothing to follow".into());
            return Err(refusal.extend());
        }
        open(ctx, kinds, Mode::Changes, resume_after)
            .await
            .map_err(|e| e.extend())
    }

    /// The caller's `pendingForMe` approvals: an approval is sent when it enters the list
    /// (`pendingForMe: true`) and when it leaves it (`false`: decided, delegated away,
    /// escalated past the caller, cancelled). A change of the caller's roles closes the
    /// connection (reconnect and re-read); a change of their approval limit shows only when the
    /// approval itself next changes.
    async fn pending_for_me(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The `cursor` of the last message seen.")] resume_after: Option<String>,
    ) -> async_graphql::Result<impl Stream<Item = Change>> {
        open(
            ctx,
            [Kind::Approval].into(),
            Mode::PendingForMe,
            resume_after,
        )
        .await
        .map_err(|e| e.extend())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Changes,
    PendingForMe,
}

async fn open(
    ctx: &Context<'_>,
    kinds: HashSet<Kind>,
    mode: Mode,
    resume_after: Option<String>,
) -> Result<impl Stream<Item = Change>, QueryError> {
    let claims = ctx
        .data::<Claims>()
        .map_err(|_| QueryError::Unauthorized)?
        .clone();
    let feeds = ctx
        .data::<Feeds>()
        .map_err(|_| QueryError::BadRequest("subscriptions are served on /graphql/ws".into()))?
        .clone();
    let since = resume_after.as_deref().map(parse_cursor).transpose()?;
    // Registered before the replay reads anything, so a change committed meanwhile is heard.
    let registration = feeds.hub.subscribe(&claims, kinds.clone())?;
    let mut feed = Feed {
        reads: feeds.reads,
        claims,
        mode,
        registration,
        sent: HashMap::new(),
        pending: HashSet::new(),
        backlog: VecDeque::new(),
        ended: false,
    };
    if let Some(since) = since {
        feed.replay(since, &kinds).await?;
    }
    Ok(futures::stream::unfold(feed, |mut feed| async move {
        let change = feed.next().await?;
        Some((change, feed))
    }))
}

fn parse_cursor(cursor: &str) -> Result<DateTime<Utc>, QueryError> {
    cursor
        .parse::<i64>()
        .ok()
        .and_then(DateTime::from_timestamp_micros)
        .ok_or_else(|| {
            QueryError::BadUserInput("`resumeAfter` is not a cursor this server sent".into())
        })
}

/// One subscription's state.
struct Feed {
    reads: PgPool,
    claims: Claims,
    mode: Mode,
    registration: Registration,
    /// The highest version sent per stream.
    sent: HashMap<Uuid, i64>,
    /// Approvals sent as pending for the caller (`PendingForMe`), to tell when they leave.
    pending: HashSet<Uuid>,
    backlog: VecDeque<Change>,
    ended: bool,
}

impl Feed {
    async fn next(&mut self) -> Option<Change> {
        loop {
            if let Some(change) = self.backlog.pop_front() {
                return Some(change);
            }
            if self.ended {
                return None;
            }
            let Some(signal) = self.registration.next().await else {
                // The hub dropped us: the client read too slowly. Say so, then end.
                self.ended = true;
                return Some(Change::resync(
                    "dropped: the client read too slowly; resume with the last cursor",
                ));
            };
            let (kind, id) = match signal {
                Signal::Resync(reason) => return Some(Change::resync(reason)),
                Signal::Changed { kind, id } => (kind, id),
            };
            match self.read(kind, id).await {
                Ok(Some(change)) => return Some(change),
                Ok(None) => {}
                Err(error) => {
                    tracing::warn!(%error, %id, "a subscription could not read a change");
                    return Some(Change::resync("the server could not read a change"));
                }
            }
        }
    }

    /// Queues the current state of every stream of `kinds` changed since `since` (less the
    /// margin) that the caller may see, or one `RESYNC`.
    async fn replay(
        &mut self,
        since: DateTime<Utc>,
        kinds: &HashSet<Kind>,
    ) -> Result<(), QueryError> {
        if since < Utc::now() - MAX_RESUME_AGE {
            self.backlog
                .push_back(Change::resync("the resume cursor is too old"));
            return Ok(());
        }
        let types: Vec<&str> = kinds.iter().map(|k| k.aggregate_type()).collect();
        let tx = TenantTx::begin(&self.reads, self.claims.tid).await?;
        let changed: Vec<(String, String)> = sqlx::query_as(
            "select aggregate_type, aggregate_id from events \
             where tenant_id = $1 and recorded_at >= $2 and aggregate_type = any($3) \
             group by aggregate_type, aggregate_id order by max(recorded_at) limit $4",
        )
        .bind(self.claims.tid)
        .bind(since - RESUME_MARGIN)
        .bind(&types)
        .bind(MAX_REPLAY + 1)
        .fetch_all(&mut *tx.conn().await?)
        .await?;
        tx.finish(true).await?;
        if changed.len() as i64 > MAX_REPLAY {
            self.backlog.push_back(Change::resync(format!(
                "more than {MAX_REPLAY} records changed since the cursor"
            )));
            return Ok(());
        }
        for (aggregate_type, id) in changed {
            let (Some(kind), Ok(id)) = (Kind::of_type(&aggregate_type), id.parse()) else {
                continue;
            };
            if let Some(change) = self.read(kind, id).await? {
                self.backlog.push_back(change);
            }
        }
        Ok(())
    }

    /// The record as the caller may see it now, if it is news to this subscription.
    async fn read(&mut self, kind: Kind, id: Uuid) -> Result<Option<Change>, QueryError> {
        let tx = TenantTx::begin(&self.reads, self.claims.tid).await?;
        let read = self.read_in(&tx, kind, id).await;
        tx.finish(read.is_ok()).await?;
        let Some(change) = read? else {
            return Ok(None);
        };
        if self.sent.len() >= REMEMBERED {
            self.sent.clear();
        }
        self.sent.insert(id, change.version.unwrap_or_default());
        Ok(Some(change))
    }

    async fn read_in(
        &mut self,
        tx: &TenantTx,
        kind: Kind,
        id: Uuid,
    ) -> Result<Option<Change>, QueryError> {
        let claims = &self.claims;
        let (tenant, scope) = (claims.tid, AccountScope::of(claims));
        match kind {
            Kind::Quote => {
                let Some(mut quote) = quotes::by_id(tx, tenant, scope, id).await? else {
                    return Ok(None);
                };
                quote.preloaded = Some(children(tx, tenant, id).await?);
                let change = self.news(tx, kind, id, quote.version).await?;
                Ok(change.map(|c| Change {
                    quote: Some(quote),
                    ..c
                }))
            }
            Kind::Contract => {
                let Some(mut contract) = contracts::by_id(tx, tenant, scope, id).await? else {
                    return Ok(None);
                };
                contract.preloaded = Some(children(tx, tenant, id).await?);
                let change = self.news(tx, kind, id, contract.stream_version).await?;
                Ok(change.map(|c| Change {
                    contract: Some(contract),
                    ..c
                }))
            }
            Kind::Approval => {
                let Some(mut approval) = approvals::by_id(tx, claims, id).await? else {
                    return Ok(None);
                };
                approval.preloaded = Some(children(tx, tenant, id).await?);
                let pending = approvals::pending_for(tx, claims, id).await?;
                if self.mode == Mode::PendingForMe && !self.pending_changed(id, pending) {
                    return Ok(None);
                }
                let change = self.news(tx, kind, id, approval.version).await?;
                Ok(change.map(|c| Change {
                    approval: Some(approval),
                    pending_for_me: Some(pending),
                    ..c
                }))
            }
        }
    }

    /// For `pendingForMe`: whether the approval is news to the caller's list (it is in it now,
    /// or this subscription sent it as in it before), remembering what was sent.
    fn pending_changed(&mut self, id: Uuid, pending: bool) -> bool {
        if pending {
            self.pending.insert(id);
            true
        } else {
            self.pending.remove(&id)
        }
    }

    /// A message for `version` of the stream, unless this subscription sent it already.
    async fn news(
        &self,
        tx: &TenantTx,
        kind: Kind,
        id: Uuid,
        version: i64,
    ) -> Result<Option<Change>, QueryError> {
        if self.sent.get(&id).is_some_and(|sent| *sent >= version) {
            return Ok(None);
        }
        let recorded_at: Option<DateTime<Utc>> = sqlx::query_scalar(
            "select recorded_at from events where aggregate_type = $1 and aggregate_id = $2 \
             and sequence = $3 and tenant_id = $4",
        )
        .bind(kind.aggregate_type())
        .bind(id.to_string())
        .bind(version)
        .bind(self.claims.tid)
        .fetch_optional(&mut *tx.conn().await?)
        .await?;
        // The row was projected from that event, so it exists; a standby that has the row has
        // it too.
        let recorded_at = recorded_at.unwrap_or_else(Utc::now);
        Ok(Some(Change::of(kind.into(), id, version, recorded_at)))
    }
}
