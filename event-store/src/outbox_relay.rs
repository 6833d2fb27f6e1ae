//! The outbox relay: publishes every committed event to RabbitMQ, at least once, in per-stream
//! order. One instance is active (a Postgres advisory lock held on its own connection); others
//! wait as standbys. A batch is deleted from the outbox only in the transaction that saw every
//! message of it confirmed, so a crash anywhere republishes instead of losing.
use std::time::Duration;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use lapin::{Confirmation, PublisherConfirm};
use sqlx::pool::PoolConnection;
use sqlx::postgres::PgListener;
use sqlx::{Acquire, PgConnection, PgPool, Postgres};

use crate::topology::{long_string, HASH_HEADER};
use crate::{StoreError, StoredEvent, Topology};

/// Advisory-lock key that elects the active relay ("b2brelay" in ASCII).
const RELAY_LOCK_KEY: i64 = 0x6232_6272_656c_6179;

#[derive(Debug, Clone)]
pub struct RelayConfig {
    pub amqp_url: String,
    pub topology: Topology,
    pub batch_size: i64,
    /// How often to look at the outbox when no NOTIFY arrives (NOTIFY is not durable).
    pub poll_interval: Duration,
}

/// Runs the relay until the task is dropped, re-electing and reconnecting after any failure.
pub async fn run(pool: PgPool, config: RelayConfig) {
    loop {
        if let Err(error) = lead(&pool, &config).await {
            tracing::warn!(%error, "outbox relay stopped; reconnecting");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[tracing::instrument(name = "outbox_relay", skip_all)]
async fn lead(pool: &PgPool, config: &RelayConfig) -> Result<(), StoreError> {
    let mut leader = take_leadership(pool).await?;
    tracing::info!("outbox relay is the active instance");
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen("outbox").await?;
    let (connection, channel) = open_channel(&config.amqp_url, &config.topology).await?;
    let result = relay_until_error(&mut leader, &mut listener, &channel, config).await;
    // With auto-recovery on, an abandoned connection would keep reconnecting in the background.
    if let Err(error) = connection.close(200, "relay session ended".into()).await {
        tracing::debug!(%error, "closing the old broker connection");
    }
    result
}

async fn relay_until_error(
    leader: &mut PgConnection,
    listener: &mut PgListener,
    channel: &Channel,
    config: &RelayConfig,
) -> Result<(), StoreError> {
    loop {
        while publish_batch(leader, channel, config).await? == config.batch_size {}
        tokio::select! {
            notification = listener.recv() => { notification?; }
            _ = tokio::time::sleep(config.poll_interval) => {}
        }
    }
}

/// Waits until this instance holds the relay lock. The connection leaves the pool: the lock
/// lives exactly as long as it does.
async fn take_leadership(pool: &PgPool) -> Result<PgConnection, StoreError> {
    let mut connection = PoolConnection::<Postgres>::detach(pool.acquire().await?);
    loop {
        let won: bool = sqlx::query_scalar("select pg_try_advisory_lock($1)")
            .bind(RELAY_LOCK_KEY)
            .fetch_one(&mut connection)
            .await?;
        if won {
            return Ok(connection);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

async fn open_channel(
    amqp_url: &str,
    topology: &Topology,
) -> Result<(Connection, Channel), StoreError> {
    let properties = ConnectionProperties::default()
        .enable_auto_recover()
        .with_connection_name(format!("b2b-outbox-relay.{}", topology.prefix).into());
    let connection = Connection::connect(amqp_url, properties).await?;
    let channel = connection.create_channel().await?;
    topology.declare(&channel).await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    Ok((connection, channel))
}

#[derive(sqlx::FromRow)]
struct OutboxRow {
    id: i64,
    #[sqlx(flatten)]
    event: StoredEvent,
}

/// Publishes the oldest batch and returns how many events it held.
async fn publish_batch(
    leader: &mut PgConnection,
    channel: &Channel,
    config: &RelayConfig,
) -> Result<i64, StoreError> {
    let mut tx = leader.begin().await?;
    let rows: Vec<OutboxRow> = sqlx::query_as(
        "select id, global_position, aggregate_type, aggregate_id, sequence, event_type, \
         event_version, payload, metadata, tenant_id, recorded_at \
         from outbox order by id limit $1 for update skip locked",
    )
    .bind(config.batch_size)
    .fetch_all(&mut *tx)
    .await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let exchange = config.topology.events_exchange();
    let mut confirms = Vec::with_capacity(rows.len());
    for row in &rows {
        confirms.push(publish(channel, &exchange, &row.event).await?);
    }
    for (row, confirm) in rows.iter().zip(confirms) {
        match confirm.await? {
            Confirmation::Ack(None) => {}
            // Unroutable messages come back as an ack with the message attached.
            Confirmation::Ack(Some(_)) => {
                return Err(StoreError::Unpublished(format!(
                    "{} was unroutable",
                    row.event.message_id()
                )))
            }
            other => {
                return Err(StoreError::Unpublished(format!(
                    "{} was not confirmed: {other:?}",
                    row.event.message_id()
                )))
            }
        }
    }
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    sqlx::query("delete from outbox where id = any($1)")
        .bind(&ids)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    tracing::debug!(count = ids.len(), "published outbox batch");
    Ok(ids.len() as i64)
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
    for key in ["correlation_id", "causation_id"] {
        if let Some(value) = event.meta(key) {
            headers.insert(key.into(), long_string(value));
        }
    }
    headers
}
