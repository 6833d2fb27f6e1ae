//! Parked messages: deliveries a consumer group gave up on (the delivery limit dead-lettered
//! them). After fixing the cause, an operator replays them into the group, or drops them.
use event_store::Topology;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicGetOptions, BasicNackOptions, BasicPublishOptions, ConfirmSelectOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};

use crate::status::inspect;
use crate::ProjectionError;

/// What to do with parked messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParkedAction {
    /// Publish each back to the group's exchange, then remove it from the parked queue.
    Replay,
    /// Remove each from the parked queue.
    Drop,
}

/// Replays or drops up to `limit` parked messages of `group` (all that are parked now when
/// `None`) and returns their message ids.
///
/// Replay republishes to the group's consistent-hash exchange with the original headers, so the
/// message lands on its stream's queue again, and waits for the broker's confirm before it
/// removes the parked copy: a crash in between replays it twice, which the checkpoint makes a
/// no-op. Only what was parked when it started is handled, so a message that fails again and
/// is parked anew is not replayed in a loop.
#[tracing::instrument(skip(amqp_url, topology), fields(prefix = %topology.prefix))]
pub async fn handle_parked(
    amqp_url: &str,
    topology: &Topology,
    group: &str,
    action: ParkedAction,
    limit: Option<u32>,
) -> Result<Vec<String>, ProjectionError> {
    let connection = Connection::connect(amqp_url, ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let queue = topology.parked_queue(group);
    let (parked, _) = inspect(&channel, &queue).await?;
    let limit = limit.map_or(parked, |limit| limit.min(parked));
    let mut handled = Vec::new();
    while handled.len() < limit as usize {
        let Some(message) = channel
            .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: false })
            .await?
        else {
            break;
        };
        let delivery = message.delivery;
        if action == ParkedAction::Replay {
            if let Err(error) = republish(&channel, topology, group, &delivery).await {
                // Leave it parked for the next attempt.
                let _ = delivery.acker.nack(BasicNackOptions::default()).await;
                return Err(error);
            }
        }
        delivery.acker.ack(BasicAckOptions::default()).await?;
        let id = message_id(&delivery);
        tracing::info!(message_id = %id, ?action, "parked message handled");
        handled.push(id);
    }
    connection
        .close(200, "parked messages handled".into())
        .await?;
    Ok(handled)
}

fn message_id(delivery: &Delivery) -> String {
    delivery
        .properties
        .message_id()
        .as_ref()
        .map_or_else(|| "(no message id)".to_owned(), |id| id.to_string())
}

async fn republish(
    channel: &Channel,
    topology: &Topology,
    group: &str,
    delivery: &Delivery,
) -> Result<(), ProjectionError> {
    let options = BasicPublishOptions {
        mandatory: true,
        ..BasicPublishOptions::default()
    };
    let confirm = channel
        .basic_publish(
            topology.group_exchange(group).into(),
            delivery.routing_key.clone(),
            options,
            &delivery.data,
            replay_properties(&delivery.properties),
        )
        .await?
        .await?;
    match confirm {
        Confirmation::Ack(None) => Ok(()),
        other => Err(ProjectionError::ReplayRefused(format!(
            "{} was not routed back into {group}: {other:?}",
            message_id(delivery)
        ))),
    }
}

/// The original properties, minus the broker's dead-letter bookkeeping (`x-death`,
/// `x-delivery-count`, `x-first-death-*`, ...): the replayed message starts with a fresh
/// delivery limit.
fn replay_properties(original: &BasicProperties) -> BasicProperties {
    let mut headers = FieldTable::default();
    if let Some(original) = original.headers() {
        for (key, value) in original.inner() {
            if !key.as_str().starts_with("x-") {
                headers.insert(key.clone(), value.clone());
            }
        }
    }
    original.clone().with_headers(headers)
}
