//! What `b2b projections status` reports: per consumer group, what waits in its queues and how
//! much is parked; per projection, how far its checkpoints are behind the event store; and how
//! much the relay has yet to publish.
use std::sync::Arc;

use event_store::Topology;
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties};
use serde::Serialize;
use sqlx::PgPool;

use crate::rebuild::RebuildProgress;
use crate::{Projection, ProjectionError};

#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub groups: Vec<GroupStatus>,
    pub projections: Vec<ProjectionStatus>,
    /// Events committed but not yet published (confirmed by the broker) by the relay.
    pub unpublished_events: i64,
    /// Rebuilds running or stopped part-way (a stopped one resumes when started again).
    pub rebuilds: Vec<RebuildProgress>,
}

#[derive(Debug, Clone, Serialize)]
pub struct GroupStatus {
    pub group: String,
    pub queues: Vec<QueueStatus>,
    pub parked: u32,
}

/// AMQP reports only the messages ready for delivery; unacknowledged ones (in flight at a
/// consumer) need the management API, which we do not depend on.
#[derive(Debug, Clone, Serialize)]
pub struct QueueStatus {
    pub queue: String,
    pub ready: u32,
    pub consumers: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProjectionStatus {
    pub projection: String,
    pub group: String,
    /// Streams with a checkpoint.
    pub streams: i64,
    /// Streams whose newest event the projection has not applied yet.
    pub streams_behind: i64,
    /// Events committed to the store and not yet applied, summed over streams.
    pub events_behind: i64,
}

/// Collects the status of the given groups and their projections. `pool` must read `events`,
/// the relay's checkpoint and `projection_checkpoints` of every tenant (the owner).
pub async fn status(
    pool: &PgPool,
    amqp_url: &str,
    topology: &Topology,
    groups: &[(&str, Vec<Arc<dyn Projection>>)],
) -> Result<Status, ProjectionError> {
    let connection = Connection::connect(amqp_url, ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    let types = aggregate_types(pool).await?;
    let mut status = Status {
        groups: Vec::new(),
        projections: Vec::new(),
        unpublished_events: event_store::relay::backlog(pool).await?,
        rebuilds: Vec::new(),
    };
    for (group, projections) in groups {
        status
            .groups
            .push(group_status(&channel, topology, group).await?);
        for projection in projections {
            let handled: Vec<String> = types
                .iter()
                .filter(|t| projection.handles(t))
                .cloned()
                .collect();
            status
                .projections
                .push(lag(pool, group, projection.as_ref(), &handled).await?);
            status
                .rebuilds
                .extend(crate::rebuild::progress(pool, projection.as_ref()).await?);
        }
    }
    connection.close(200, "status read".into()).await?;
    Ok(status)
}

async fn aggregate_types(pool: &PgPool) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("select distinct aggregate_type from events")
        .fetch_all(pool)
        .await
}

async fn group_status(
    channel: &Channel,
    topology: &Topology,
    group: &str,
) -> Result<GroupStatus, ProjectionError> {
    let mut queues = Vec::new();
    for partition in 0..topology.partitions {
        let queue = topology.group_queue(group, partition);
        let (ready, consumers) = inspect(channel, &queue).await?;
        queues.push(QueueStatus {
            queue,
            ready,
            consumers,
        });
    }
    let (parked, _) = inspect(channel, &topology.parked_queue(group)).await?;
    Ok(GroupStatus {
        group: group.to_owned(),
        queues,
        parked,
    })
}

/// Ready messages and consumers of a queue, without creating it (a passive declare).
pub(crate) async fn inspect(channel: &Channel, queue: &str) -> Result<(u32, u32), lapin::Error> {
    let options = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    let declared = channel
        .queue_declare(queue.into(), options, FieldTable::default())
        .await?;
    Ok((declared.message_count(), declared.consumer_count()))
}

/// Compares each stream's newest sequence with the projection's checkpoint.
async fn lag(
    pool: &PgPool,
    group: &str,
    projection: &dyn Projection,
    aggregate_types: &[String],
) -> Result<ProjectionStatus, sqlx::Error> {
    // Only the events it subscribes to can move its checkpoints: a stream whose newest events
    // are of other types is not behind.
    let subscribed: Vec<String> = projection
        .routing_keys()
        .iter()
        .map(|key| key.replace(['*', '#'], "%"))
        .collect();
    let (streams, streams_behind, events_behind): (i64, i64, i64) = sqlx::query_as(
        "with heads as ( \
             select aggregate_type, aggregate_id, max(sequence) as head from events \
             where aggregate_type = any($2) \
               and aggregate_type || '.' || event_type like any($3) \
             group by aggregate_type, aggregate_id) \
         select count(c.last_sequence), \
                count(*) filter (where h.head > coalesce(c.last_sequence, 0)), \
                coalesce(sum(greatest(h.head - coalesce(c.last_sequence, 0), 0)), 0)::bigint \
         from heads h left join projection_checkpoints c on c.projection = $1 \
              and c.aggregate_type = h.aggregate_type and c.aggregate_id = h.aggregate_id",
    )
    .bind(projection.name())
    .bind(aggregate_types)
    .bind(&subscribed)
    .fetch_one(pool)
    .await?;
    Ok(ProjectionStatus {
        projection: projection.name().to_owned(),
        group: group.to_owned(),
        streams,
        streams_behind,
        events_behind,
    })
}

impl std::fmt::Display for Status {
    /// The human-readable form: one table of queues, one of projections.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{:<40} {:>8} {:>10}", "QUEUE", "READY", "CONSUMERS")?;
        for group in &self.groups {
            for queue in &group.queues {
                writeln!(
                    f,
                    "{:<40} {:>8} {:>10}",
                    queue.queue, queue.ready, queue.consumers
                )?;
            }
            writeln!(
                f,
                "{:<40} {:>8}",
                format!("{} (parked)", group.group),
                group.parked
            )?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "{:<28} {:<18} {:>8} {:>14} {:>13}",
            "PROJECTION", "GROUP", "STREAMS", "STREAMS BEHIND", "EVENTS BEHIND"
        )?;
        for p in &self.projections {
            writeln!(
                f,
                "{:<28} {:<18} {:>8} {:>14} {:>13}",
                p.projection, p.group, p.streams, p.streams_behind, p.events_behind
            )?;
        }
        for rebuild in &self.rebuilds {
            writeln!(f)?;
            write!(f, "rebuild {rebuild}")?;
        }
        writeln!(f)?;
        write!(f, "unpublished events: {}", self.unpublished_events)
    }
}
