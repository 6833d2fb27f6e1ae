//! The projector worker: consumes a consumer group's queues and applies each event to every
//! projection that wants it, exactly once, under checkpoints (see [`crate::checkpoint`]).
//!
//! One queue's deliveries are handled strictly in order, so a stream's events (which the
//! consistent-hash exchange keeps in one queue) reach the projections in order; different
//! queues run concurrently. What has arrived by the time a batch starts (up to the prefetch) is
//! applied in one transaction and acknowledged with one multiple-ack; if the batch fails, its
//! deliveries are redone one at a time (a transient failure retried in place, anything else
//! requeued), so a poison message is parked alone. Single-active-consumer queues let several
//! projector processes run as hot standbys.
use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use event_store::broker::BrokerHealth;
use event_store::Topology;
use futures::{FutureExt, StreamExt};
use lapin::options::{BasicConsumeOptions, BasicQosOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use sqlx::PgPool;
use tokio::time::{sleep, Instant};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{Projection, ProjectionError};

mod delivery;
mod measure;

pub use measure::applied_positions;

use delivery::handle_batch;

#[derive(Debug, Clone)]
pub struct ProjectorConfig {
    pub amqp_url: String,
    pub topology: Topology,
    /// The consumer group whose queues this worker consumes, e.g. [`crate::READ_MODELS`].
    pub group: String,
    /// Unacknowledged deliveries the broker may push ahead, per queue.
    pub prefetch: u16,
    /// Told whether this worker's connection is open, for readiness.
    pub broker_health: BrokerHealth,
}

type Projections = [Arc<dyn Projection>];

/// Pauses between sessions that ended soon after they started: a broker or database that is
/// away is not hammered, but the cap is short, because after a RabbitMQ node dies consuming
/// fails for a while as the quorum queues elect new leaders; a cap of 30 s kept the read
/// models stale for 50 s after such a failover.
const QUICK_ENDS: ExponentialBuilder = ExponentialBuilder::new()
    .with_min_delay(Duration::from_millis(250))
    .with_max_delay(Duration::from_secs(2))
    .without_max_times();

/// A session that ran this long was healthy: the next failure starts the backoff over.
const HEALTHY_SESSION: Duration = Duration::from_secs(60);

/// Runs the projector until `stop` is cancelled (or the task is dropped), reconnecting with
/// backoff after any failure. On `stop`, each queue finishes and acknowledges the batch it is
/// applying, takes no more, and the connection is closed, handing back what was prefetched.
///
/// No auto-recovery, as in the relay: any connection or channel error ends the session, and
/// the next one opens a fresh connection. What was delivered but not acknowledged is
/// redelivered by the broker to whichever consumer holds the queue next, and the checkpoints
/// make applying it again a no-op.
pub async fn run(
    pool: PgPool,
    config: ProjectorConfig,
    projections: Vec<Arc<dyn Projection>>,
    stop: CancellationToken,
) {
    let mut pauses = QUICK_ENDS.build();
    while !stop.is_cancelled() {
        let started = Instant::now();
        if let Err(error) = consume(&pool, &config, &projections, &stop).await {
            config.broker_health.link(&config.group, false);
            tracing::warn!(%error, group = %config.group, "projector stopped; reconnecting");
        }
        // A healthy session starts the backoff over; the backoff never runs out.
        if started.elapsed() > HEALTHY_SESSION {
            pauses = QUICK_ENDS.build();
        }
        let pause = pauses.next().unwrap_or(HEALTHY_PAUSE);
        tokio::select! {
            _ = sleep(pause) => {}
            _ = stop.cancelled() => {}
        }
    }
    config.broker_health.unlink(&config.group);
    tracing::info!(group = %config.group, "projector stopped");
}

/// The pause after a healthy session ended.
const HEALTHY_PAUSE: Duration = Duration::from_millis(500);

#[tracing::instrument(name = "projector", skip_all, fields(group = %config.group))]
async fn consume(
    pool: &PgPool,
    config: &ProjectorConfig,
    projections: &Projections,
    stop: &CancellationToken,
) -> Result<(), ProjectionError> {
    let properties =
        ConnectionProperties::default().with_connection_name(connection_name(config).into());
    let session = Session(Some(
        Connection::connect(&config.amqp_url, properties).await?,
    ));
    let connection = session.connection();
    let topology = with_group(&config.topology, &config.group);
    topology
        .declare(&connection.create_channel().await?)
        .await?;
    config.broker_health.link(&config.group, true);
    let queues = (0..topology.partitions).map(|partition| {
        let queue = topology.group_queue(&config.group, partition);
        let target = (pool, config.group.as_str(), projections);
        consume_queue(connection, queue, config.prefetch, target, stop)
    });
    // The first queue to fail ends them all; dropping the connection hands every unacked
    // delivery back to the broker, and the caller reconnects.
    futures::future::try_join_all(queues).await?;
    // Stopped: every queue's last batch is acknowledged; closing now (rather than in the
    // background on drop, which a stopping runtime may never run) sends those acks before the
    // close, and hands what was prefetched but not applied back to the broker.
    session.close().await;
    Ok(())
}

/// Owns one session's broker connection and closes it for good when dropped, however the
/// session ends (an error, or the task being dropped).
struct Session(Option<Connection>);

impl Session {
    fn connection(&self) -> &Connection {
        self.0.as_ref().expect("present until dropped")
    }

    /// Closes the connection now and waits for the broker to confirm it.
    async fn close(mut self) {
        if let Some(connection) = self.0.take() {
            if let Err(error) = connection.close(200, "projector stopping".into()).await {
                tracing::debug!(%error, "closing the broker connection");
            }
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let Some(connection) = self.0.take() else {
            return;
        };
        // A connection that failed is gone already; one dropped with the task is closed in
        // the background, handing its unacknowledged deliveries back.
        if connection.status().connected() {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    let closing = connection.close(200, "projector session ended".into());
                    if let Ok(Err(error)) = tokio::time::timeout(CLOSE, closing).await {
                        tracing::debug!(%error, "closing the old broker connection");
                    }
                });
            }
        }
    }
}

/// How long closing a finished session may take in the background.
const CLOSE: Duration = Duration::from_secs(5);

/// Names the connection after the deployment and group, so an operator (or a test) can tell
/// projectors apart in the broker's connection list.
pub fn connection_name(config: &ProjectorConfig) -> String {
    format!("b2b-projector.{}.{}", config.topology.prefix, config.group)
}

/// The topology, with this worker's group declared even if the deployment forgot to list it.
fn with_group(topology: &Topology, group: &str) -> Topology {
    let mut topology = topology.clone();
    if !topology.groups.iter().any(|g| g == group) {
        topology.groups.push(group.to_owned());
    }
    topology
}

/// Consumes one queue until `stop` (between batches: a batch begun is applied and acked) or a
/// failure.
async fn consume_queue(
    connection: &Connection,
    queue: String,
    prefetch: u16,
    (pool, group, projections): (&PgPool, &str, &Projections),
    stop: &CancellationToken,
) -> Result<(), ProjectionError> {
    // A channel per queue, so its prefetch and its failures are its own.
    let channel = connection.create_channel().await?;
    channel
        .basic_qos(prefetch, BasicQosOptions::default())
        .await?;
    let tag = format!("projector-{}", Uuid::new_v4());
    let mut deliveries = channel
        .basic_consume(
            queue.as_str().into(),
            tag.into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    tracing::info!(%queue, "consuming");
    let mut batch = Vec::with_capacity(usize::from(prefetch));
    loop {
        let next = tokio::select! {
            biased;
            _ = stop.cancelled() => return Ok(()),
            next = deliveries.next() => next,
        };
        let Some(next) = next else { break };
        let mut next = Some(next);
        // Whatever else has already arrived joins the batch.
        while let Some(arrived) = next {
            // A lost channel or connection ends the session: the batch is not applied (its
            // deliveries cannot be acknowledged any more), and the broker redelivers it.
            batch.push(arrived?);
            next = match batch.len() < usize::from(prefetch) {
                true => deliveries.next().now_or_never().flatten(),
                false => None,
            };
        }
        handle_batch((pool, group), projections, std::mem::take(&mut batch)).await;
    }
    Err(ProjectionError::ConsumerCancelled(queue))
}

/// How many messages wait in the group's parked queue.
pub async fn parked_count(
    amqp_url: &str,
    topology: &Topology,
    group: &str,
) -> Result<u32, ProjectionError> {
    let connection = Connection::connect(amqp_url, ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    let options = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    let queue = channel
        .queue_declare(
            topology.parked_queue(group).into(),
            options,
            FieldTable::default(),
        )
        .await?;
    connection.close(200, "done".into()).await?;
    Ok(queue.message_count())
}

#[cfg(test)]
mod tests {
    use backon::BackoffBuilder;

    use super::delivery::{requeue_pause, TRANSIENT_FAILURES};
    use super::*;

    /// Rounded to milliseconds: backon doubles in floating point, a few nanoseconds off.
    fn ms(pause: Duration) -> u64 {
        (pause.as_secs_f64() * 1_000.0).round() as u64
    }

    fn first_ms(backoff: ExponentialBuilder, pauses: usize) -> Vec<u64> {
        backoff.build().take(pauses).map(ms).collect()
    }

    #[test]
    fn pauses_double_up_to_their_caps() {
        let quick_ends = [250, 500, 1_000, 2_000, 2_000, 2_000, 2_000];
        assert_eq!(first_ms(QUICK_ENDS, 7), quick_ends);
        let transient = [200, 400, 800, 1_600, 3_200, 6_400, 12_800, 25_600, 30_000];
        assert_eq!(first_ms(TRANSIENT_FAILURES, 9), transient);
        assert_eq!(first_ms(TRANSIENT_FAILURES, 1_000)[999], 30_000);
        assert_eq!(ms(requeue_pause(0)), 20);
        assert_eq!(ms(requeue_pause(3)), 160);
        assert_eq!(ms(requeue_pause(40)), 500);
    }
}
