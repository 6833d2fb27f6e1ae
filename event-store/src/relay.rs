//! The relay: publishes every committed event to RabbitMQ, at least once, in per-stream order.
//!
//! It reads the `events` table itself, so an append writes nothing for it. It follows
//! `global_position` and remembers the gaps it meets: a position whose transaction has not
//! committed yet (it may later) or never will (rolled back). Publishing never waits for gaps or
//! for unrelated long transactions; a gap is re-read on every poll until it appears or is
//! known dead: no transaction that was running when it was seen is still running (the
//! snapshot's xmin has passed the xmax of the snapshot that saw it; the insert trigger takes
//! the transaction id before the position, which makes that test sound). Per-stream order
//! holds because a stream's next event is inserted only after its predecessor committed, so it
//! has a higher position. The checkpoint is the watermark below the oldest open gap: a restart
//! republishes from it (duplicates downstream are harmless, gaps impossible).
//!
//! One instance is active: the one holding the lease in `relay_state`. The lease is renewed
//! with every checkpoint and while idle; a leader that hangs (or is paused) loses it after
//! `lease`, a standby takes it over, and the old leader, once it runs again, sees its own
//! deadline passed and stops before publishing more. Its checkpoint write is fenced on holding
//! the lease, so it cannot move the new leader's checkpoint either.
use std::sync::Arc;
use std::time::Duration;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use lapin::{Confirmation, PublisherConfirm};
use sqlx::PgPool;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use std::collections::BTreeMap;

use crate::broker::BrokerHealth;
use crate::history::EVENT_COLUMNS;
use crate::topology::{long_string, HASH_HEADER};
use crate::{StoreError, StoredEvent, Topology};
use sqlx::FromRow;

/// How long closing a finished session may take before the relay moves on without it.
const BROKER_CLOSE: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct RelayConfig {
    pub amqp_url: String,
    pub topology: Topology,
    pub batch_size: i64,
    /// The longest pause between two looks at the event store while idle. After publishing,
    /// the relay looks again at once; each empty look doubles the pause from 1 ms up to this.
    pub max_poll_interval: Duration,
    /// How long a leader keeps the relay without renewing; a hung leader is replaced after it.
    pub lease: Duration,
    /// Told whether the leader's connection is open, for readiness.
    pub broker_health: BrokerHealth,
}

/// The relay's name among the connections [`BrokerHealth`] follows.
const LINK: &str = "relay";

impl RelayConfig {
    pub fn new(amqp_url: String, topology: Topology) -> Self {
        Self {
            amqp_url,
            topology,
            batch_size: 512,
            max_poll_interval: Duration::from_millis(50),
            lease: Duration::from_secs(5),
            broker_health: BrokerHealth::default(),
        }
    }
}

/// Runs the relay until `stop` is cancelled (or the task is dropped): waits as a standby, leads
/// while it holds the lease, and starts over after any failure. `committed` wakes it when a
/// command commits in this process; commits elsewhere are found by polling. On `stop` a leader
/// finishes the batch it is publishing, moves its checkpoint and hands the lease back, so a
/// standby takes over at once rather than after the lease runs out.
pub async fn run(
    pool: PgPool,
    config: RelayConfig,
    committed: Arc<Notify>,
    stop: CancellationToken,
) {
    let me = Uuid::new_v4();
    while !stop.is_cancelled() {
        match Lease::acquire(&pool, me, config.lease).await {
            Ok(Some((lease, from))) => {
                tracing::info!(relay = %me, "relay holds the lease and is publishing");
                metrics::gauge!("b2b_relay_leader").set(1.0);
                let mut leader = Leader {
                    pool: &pool,
                    config: &config,
                    committed: &committed,
                    stop: &stop,
                    lease,
                    cursor: Cursor::from_watermark(from),
                };
                let stopped = leader.lead().await;
                metrics::gauge!("b2b_relay_leader").set(0.0);
                match stopped {
                    Some(error) => tracing::warn!(relay = %me, %error, "relay stopped leading"),
                    None => leader.lease.release(&pool).await,
                }
            }
            // A standby holds no connection: readiness goes by the others, or a probe.
            Ok(None) => config.broker_health.unlink(LINK),
            Err(error) => tracing::warn!(%error, "relay could not reach the lease"),
        }
        tokio::select! {
            _ = tokio::time::sleep(config.lease / 5) => {}
            _ = stop.cancelled() => {}
        }
    }
    tracing::info!(relay = %me, "relay stopped");
}

/// The lease as this instance knows it: held until `valid_until` on its own clock, which is
/// measured from before the renewing statement was sent, so it never outlives the database's.
struct Lease {
    holder: Uuid,
    length: Duration,
    valid_until: Instant,
    renewed_at: Instant,
}

impl Lease {
    /// Takes the lease if it is free or expired; returns where publishing continues.
    async fn acquire(
        pool: &PgPool,
        holder: Uuid,
        length: Duration,
    ) -> Result<Option<(Self, i64)>, sqlx::Error> {
        let sent = Instant::now();
        let row: Option<i64> = sqlx::query_scalar(
            "update relay_state set leader = $1, \
                    lease_until = clock_timestamp() + $2 * interval '1 second' \
              where leader = $1 or lease_until < clock_timestamp() \
             returning global_position",
        )
        .bind(holder)
        .bind(length.as_secs_f64())
        .fetch_optional(pool)
        .await?;
        Ok(row.map(|watermark| {
            let lease = Self {
                holder,
                length,
                valid_until: sent + length,
                renewed_at: sent,
            };
            (lease, watermark)
        }))
    }

    fn held(&self) -> bool {
        Instant::now() < self.valid_until
    }

    fn due(&self) -> bool {
        self.renewed_at.elapsed() > self.length / 3
    }

    /// Gives the lease up (on an orderly stop), so a standby need not wait for it to run out.
    async fn release(&self, pool: &PgPool) {
        let released =
            sqlx::query("update relay_state set lease_until = clock_timestamp() where leader = $1")
                .bind(self.holder)
                .execute(pool)
                .await;
        if let Err(error) = released {
            tracing::warn!(%error, "could not hand the relay lease back; it runs out by itself");
        }
    }

    /// Renews the lease and, when given, moves the checkpoint, in one fenced statement.
    async fn renew(&mut self, pool: &PgPool, watermark: i64) -> Result<(), StoreError> {
        let sent = Instant::now();
        let renewed = sqlx::query(
            "update relay_state set global_position = $3, \
                    lease_until = clock_timestamp() + $2 * interval '1 second' \
              where leader = $1 and lease_until >= clock_timestamp()",
        )
        .bind(self.holder)
        .bind(self.length.as_secs_f64())
        .bind(watermark)
        .execute(pool)
        .await?;
        if renewed.rows_affected() == 0 {
            return Err(StoreError::Unpublished(
                "the relay lease was lost to another instance".into(),
            ));
        }
        self.valid_until = sent + self.length;
        self.renewed_at = sent;
        Ok(())
    }
}

struct Leader<'a> {
    pool: &'a PgPool,
    config: &'a RelayConfig,
    committed: &'a Notify,
    stop: &'a CancellationToken,
    lease: Lease,
    cursor: Cursor,
}

impl Leader<'_> {
    /// Publishes until something fails, the lease is lost, or `stop`; returns why it stopped
    /// (nothing for `stop`).
    ///
    /// Every wait on the broker is bounded: a broker that restarts or stalls mid-handshake
    /// must end this session (and let the outer loop open a fresh one), never hang it.
    async fn lead(&mut self) -> Option<StoreError> {
        let opened = tokio::time::timeout(
            self.lease.length,
            open_channel(&self.config.amqp_url, &self.config.topology),
        );
        let health = &self.config.broker_health;
        let (connection, channel) = match opened.await {
            Ok(Ok(opened)) => opened,
            Ok(Err(error)) => {
                health.link(LINK, false);
                return Some(error);
            }
            Err(_) => {
                health.link(LINK, false);
                return Some(StoreError::Unpublished(
                    "the broker did not open a channel".into(),
                ));
            }
        };
        health.link(LINK, true);
        let error = self.publish_until_error(&channel).await;
        // Whatever ended the session, the next one (or a probe) tells the broker's state.
        health.unlink(LINK);
        let closing = connection.close(200, "relay session ended".into());
        match tokio::time::timeout(BROKER_CLOSE, closing).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::debug!(%error, "closing the old broker connection"),
            Err(_) => tracing::debug!("the old broker connection did not close in time"),
        }
        error
    }

    /// Between batches only: a batch begun is published, confirmed and checkpointed.
    async fn publish_until_error(&mut self, channel: &Channel) -> Option<StoreError> {
        let mut pause = Duration::from_millis(1);
        while !self.stop.is_cancelled() {
            match self.publish_batch(channel).await {
                Ok(0) => {}
                Ok(_) => {
                    pause = Duration::from_millis(1);
                    continue;
                }
                Err(error) => return Some(error),
            }
            if self.lease.due() {
                if let Err(error) = self.lease.renew(self.pool, self.cursor.watermark()).await {
                    return Some(error);
                }
            }
            tokio::select! {
                _ = self.stop.cancelled() => {}
                _ = self.committed.notified() => {}
                _ = tokio::time::sleep(pause) => {
                    pause = (pause * 2).min(self.config.max_poll_interval);
                }
            }
        }
        None
    }

    /// Publishes the next batch (new events, and gaps that filled) and returns how many
    /// events it held.
    async fn publish_batch(&mut self, channel: &Channel) -> Result<usize, StoreError> {
        let batch = self.cursor.read(self.pool, self.config.batch_size).await?;
        if batch.is_empty() {
            return Ok(0);
        }
        // Confirms that never come (a broker restarting under the channel) end the session
        // when the lease would run out anyway.
        let confirmed = tokio::time::timeout_at(
            self.lease.valid_until,
            publish_confirmed(channel, &self.config.topology, &self.lease, &batch),
        );
        confirmed.await.map_err(|_| {
            StoreError::Unpublished("the relay lease ran out before the batch was confirmed".into())
        })??;
        self.lease.renew(self.pool, self.cursor.watermark()).await?;
        metrics::counter!("b2b_relay_published_total").increment(batch.len() as u64);
        metrics::histogram!("b2b_relay_batch_size").record(batch.len() as f64);
        tracing::debug!(
            count = batch.len(),
            gaps = self.cursor.gaps.len(),
            "published a batch"
        );
        Ok(batch.len())
    }
}

/// Where the relay stands: every position up to `high` is published except the open `gaps`,
/// each with the xmax of the snapshot that first missed it.
struct Cursor {
    high: i64,
    gaps: BTreeMap<i64, i64>,
}

#[derive(FromRow)]
struct RelayedRow {
    /// xmax of the reading statement's snapshot.
    snapshot_xmax: i64,
    #[sqlx(flatten)]
    event: StoredEvent,
}

impl Cursor {
    fn from_watermark(watermark: i64) -> Self {
        Self {
            high: watermark,
            gaps: BTreeMap::new(),
        }
    }

    /// Everything at or below it is published or will never exist.
    fn watermark(&self) -> i64 {
        self.gaps
            .keys()
            .next()
            .map_or(self.high, |oldest| oldest - 1)
    }

    /// The next events to publish, in position order; the cursor counts them as published.
    async fn read(&mut self, pool: &PgPool, limit: i64) -> Result<Vec<StoredEvent>, sqlx::Error> {
        // Taken before the read, so a gap judged dead by it could not have committed unseen.
        let xmin_before: Option<i64> = match self.gaps.is_empty() {
            true => None,
            false => Some(
                sqlx::query_scalar("select pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
                    .fetch_one(pool)
                    .await?,
            ),
        };
        let gaps: Vec<i64> = self.gaps.keys().copied().collect();
        // Two index scans merged: with `position > $1 or position = any($2)` the prepared
        // statement's generic plan walks the whole position index from the start.
        let rows: Vec<RelayedRow> = sqlx::query_as(&format!(
            "select pg_snapshot_xmax(pg_current_snapshot())::text::bigint as snapshot_xmax, \
                    {EVENT_COLUMNS} \
               from ((select * from events where global_position > $1 \
                       order by global_position limit $3) \
                     union all \
                     (select * from events where global_position = any($2))) events \
              order by global_position limit $3"
        ))
        .bind(self.high)
        .bind(&gaps)
        .bind(limit)
        .fetch_all(pool)
        .await?;
        let mut events = Vec::with_capacity(rows.len());
        for row in rows {
            let position = row.event.global_position;
            if self.gaps.remove(&position).is_none() {
                for missing in self.high + 1..position {
                    self.gaps.insert(missing, row.snapshot_xmax);
                }
                self.high = self.high.max(position);
            }
            events.push(row.event);
        }
        if let Some(xmin) = xmin_before {
            // Whoever held such a position has ended, and the read above would have seen it.
            self.gaps.retain(|_, seen_below| *seen_below > xmin);
        }
        Ok(events)
    }
}

/// Publishes `batch` and waits for the broker to confirm every event.
async fn publish_confirmed(
    channel: &Channel,
    topology: &Topology,
    lease: &Lease,
    batch: &[StoredEvent],
) -> Result<(), StoreError> {
    let exchange = topology.events_exchange();
    let mut confirms = Vec::with_capacity(batch.len());
    for event in batch {
        // A leader that was paused past its lease must not publish on.
        if !lease.held() {
            return Err(StoreError::Unpublished(
                "the relay lease ran out before the batch was published".into(),
            ));
        }
        confirms.push((event, publish(channel, &exchange, event).await?));
    }
    for (event, confirm) in confirms {
        check_confirm(event, confirm.await?)?;
    }
    Ok(())
}

fn check_confirm(event: &StoredEvent, confirmation: Confirmation) -> Result<(), StoreError> {
    match confirmation {
        Confirmation::Ack(None) => Ok(()),
        // Unroutable messages come back as an ack with the message attached.
        Confirmation::Ack(Some(_)) => Err(StoreError::Unpublished(format!(
            "{} was unroutable",
            event.message_id()
        ))),
        other => Err(StoreError::Unpublished(format!(
            "{} was not confirmed: {other:?}",
            event.message_id()
        ))),
    }
}

async fn open_channel(
    amqp_url: &str,
    topology: &Topology,
) -> Result<(Connection, Channel), StoreError> {
    // No auto-recovery: the leader opens a fresh session after any failure, and lapin's
    // recovery can leave publishes and confirms waiting on a connection that never returns.
    let properties = ConnectionProperties::default()
        .with_connection_name(format!("b2b-relay.{}", topology.prefix).into());
    let connection = Connection::connect(amqp_url, properties).await?;
    let channel = connection.create_channel().await?;
    topology.declare(&channel).await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    Ok((connection, channel))
}

async fn publish(
    channel: &Channel,
    exchange: &str,
    event: &StoredEvent,
) -> Result<PublisherConfirm, StoreError> {
    let body = serde_json::to_vec(event).map_err(|e| StoreError::Unpublished(e.to_string()))?;
    let properties = BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type("application/json".into())
        .with_message_id(event.message_id().into())
        .with_headers(headers(event));
    let options = BasicPublishOptions {
        mandatory: true,
        ..BasicPublishOptions::default()
    };
    Ok(channel
        .basic_publish(
            exchange.into(),
            event.routing_key().into(),
            options,
            &body,
            properties,
        )
        .await?)
}

fn headers(event: &StoredEvent) -> FieldTable {
    let mut headers = FieldTable::default();
    headers.insert(HASH_HEADER.into(), long_string(&event.aggregate_id));
    headers.insert("aggregate_type".into(), long_string(&event.aggregate_type));
    headers.insert("sequence".into(), AMQPValue::LongLongInt(event.sequence));
    headers.insert("event_type".into(), long_string(&event.event_type));
    headers.insert("event_version".into(), long_string(&event.event_version));
    headers.insert(
        "tenant_id".into(),
        long_string(&event.tenant_id.to_string()),
    );
    headers.insert(
        "global_position".into(),
        AMQPValue::LongLongInt(event.global_position),
    );
    // The trace context rides along, so the consumers' spans continue the request's trace.
    for key in ["correlation_id", "causation_id", crate::trace::TRACEPARENT] {
        if let Some(value) = event.meta(key) {
            headers.insert(key.into(), long_string(value));
        }
    }
    headers
}

/// Deployment-wide gauges of the store, from index lookups.
#[derive(Debug, Clone, Copy, FromRow)]
pub struct Positions {
    /// The global position of the last stored event.
    pub stored_position: i64,
    /// Events above the relay's checkpoint: not yet published, or published since it last
    /// moved.
    pub unpublished: i64,
}

/// The store's gauges (for status and metrics). They span every tenant, so any login reads
/// them through `event_positions` (migration 0021), which answers these two numbers only.
pub async fn positions(pool: &PgPool) -> Result<Positions, sqlx::Error> {
    sqlx::query_as("select stored_position, unpublished from event_positions()")
        .fetch_one(pool)
        .await
}

/// Events above the relay's checkpoint (see [`Positions::unpublished`]).
pub async fn backlog(pool: &PgPool) -> Result<i64, sqlx::Error> {
    Ok(positions(pool).await?.unpublished)
}
