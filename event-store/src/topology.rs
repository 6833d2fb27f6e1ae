//! RabbitMQ names and declarations. Every event goes to one topic exchange; each consumer group
//! gets a consistent-hash exchange on the aggregate id feeding `partitions` quorum queues, so one
//! aggregate's events stay in one queue, in order, with a single active consumer.
use std::collections::BTreeMap;

use lapin::options::{
    ExchangeBindOptions, ExchangeDeclareOptions, ExchangeUnbindOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{Channel, ExchangeKind};

/// Deliveries beyond this count are dead-lettered to the group's parked queue. Always set: a
/// quorum queue without it requeues a nacked message at the back and order breaks. RabbitMQ 3.10
/// (Debian 12) also counts a delivery cut off by a lost consumer connection, so the limit leaves
/// room for a run of broker or worker restarts before a healthy message is parked.
pub const DELIVERY_LIMIT: i64 = 20;

/// Header the consistent-hash exchanges hash on.
pub const HASH_HEADER: &str = "aggregate_id";

#[derive(Debug, Clone)]
pub struct Topology {
    /// Prefix of every name, so several deployments (or test runs) can share one broker.
    pub prefix: String,
    /// Queues per consumer group; fixed per deployment.
    pub partitions: u16,
    /// Consumer groups whose queues must exist before the first event is published.
    pub groups: Vec<String>,
    /// Per group, the routing keys (`<aggregate type>.<event type>`, `*` for either part) of the
    /// events it is bound to, so that events none of its handlers act on never reach its queues.
    /// A group not listed gets every event (`#`).
    pub routing: BTreeMap<String, Vec<String>>,
}

/// The binding that routes every event.
const EVERY_EVENT: &str = "#";

impl Topology {
    pub fn events_exchange(&self) -> String {
        format!("{}.events", self.prefix)
    }

    pub fn group_exchange(&self, group: &str) -> String {
        format!("{}.{group}", self.prefix)
    }

    pub fn group_queue(&self, group: &str, partition: u16) -> String {
        format!("{}.{group}.{partition}", self.prefix)
    }

    pub fn parked_exchange(&self, group: &str) -> String {
        format!("{}.{group}.parked", self.prefix)
    }

    pub fn parked_queue(&self, group: &str) -> String {
        self.parked_exchange(group)
    }

    /// Declares everything, idempotently: the relay and every consumer call this at start.
    pub async fn declare(&self, channel: &Channel) -> Result<(), lapin::Error> {
        channel
            .exchange_declare(
                self.events_exchange().into(),
                ExchangeKind::Topic,
                durable_exchange(),
                FieldTable::default(),
            )
            .await?;
        for group in &self.groups {
            self.declare_group(channel, group).await?;
        }
        Ok(())
    }

    async fn declare_group(&self, channel: &Channel, group: &str) -> Result<(), lapin::Error> {
        let parked = self.parked_exchange(group);
        channel
            .exchange_declare(
                parked.clone().into(),
                ExchangeKind::Fanout,
                durable_exchange(),
                FieldTable::default(),
            )
            .await?;
        channel
            .queue_declare(
                self.parked_queue(group).into(),
                durable_queue(),
                quorum_args(None),
            )
            .await?;
        channel
            .queue_bind(
                self.parked_queue(group).into(),
                parked.clone().into(),
                "".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let exchange = self.group_exchange(group);
        let mut hash_args = FieldTable::default();
        hash_args.insert("hash-header".into(), long_string(HASH_HEADER));
        channel
            .exchange_declare(
                exchange.clone().into(),
                ExchangeKind::Custom("x-consistent-hash".into()),
                durable_exchange(),
                hash_args,
            )
            .await?;
        self.bind_routing(channel, group, &exchange).await?;
        for partition in 0..self.partitions {
            let queue = self.group_queue(group, partition);
            let mut args = quorum_args(Some(&parked));
            args.insert("x-single-active-consumer".into(), AMQPValue::Boolean(true));
            args.insert(
                "x-delivery-limit".into(),
                AMQPValue::LongLongInt(DELIVERY_LIMIT),
            );
            channel
                .queue_declare(queue.clone().into(), durable_queue(), args)
                .await?;
            // The routing key of a consistent-hash binding is the queue's weight.
            channel
                .queue_bind(
                    queue.into(),
                    exchange.clone().into(),
                    "1".into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
        }
        Ok(())
    }

    /// Binds the group's exchange to the events it subscribes to. A group narrowed to some
    /// events also drops the bind-everything binding an earlier version may have left; a key
    /// it no longer lists stays bound (only more deliveries, which its handlers ignore).
    async fn bind_routing(
        &self,
        channel: &Channel,
        group: &str,
        exchange: &str,
    ) -> Result<(), lapin::Error> {
        let keys = match self.routing.get(group) {
            Some(keys) if !keys.is_empty() => keys.clone(),
            _ => vec![EVERY_EVENT.to_owned()],
        };
        for key in &keys {
            channel
                .exchange_bind(
                    exchange.into(),
                    self.events_exchange().into(),
                    key.as_str().into(),
                    ExchangeBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
        }
        if !keys.iter().any(|key| key == EVERY_EVENT) {
            channel
                .exchange_unbind(
                    exchange.into(),
                    self.events_exchange().into(),
                    EVERY_EVENT.into(),
                    ExchangeUnbindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
        }
        Ok(())
    }
}

pub fn long_string(value: &str) -> AMQPValue {
    AMQPValue::LongString(value.into())
}

pub fn short(value: &str) -> ShortString {
    value.into()
}

fn durable_exchange() -> ExchangeDeclareOptions {
    ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    }
}

fn durable_queue() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    }
}

fn quorum_args(dead_letter_exchange: Option<&str>) -> FieldTable {
    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), long_string("quorum"));
    if let Some(dlx) = dead_letter_exchange {
        args.insert("x-dead-letter-exchange".into(), long_string(dlx));
    }
    args
}
