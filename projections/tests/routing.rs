//! Each consumer group is bound only to the events its handlers act on, against the real
//! broker: a line item (80 % of a quoting workload) reaches the read models and never costs the
//! process managers a delivery, and a deployment upgraded from bind-everything loses that binding.
mod support;

use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use projections::{PROCESS_MANAGERS, READ_MODELS};
use support::TestStack;
use uuid::Uuid;

/// Messages waiting in every partition of `group`.
async fn waiting(stack: &TestStack, group: &str) -> u32 {
    let connection = Connection::connect(&stack.amqp_url, ConnectionProperties::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    let passive = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    let mut total = 0;
    for partition in 0..stack.topology.partitions {
        let queue = stack.topology.group_queue(group, partition);
        let declared = channel
            .queue_declare(queue.into(), passive, FieldTable::default())
            .await
            .unwrap();
        total += declared.message_count();
    }
    connection.close(200, "counted".into()).await.ok();
    total
}

fn message(routing_key: &str) -> (Vec<u8>, String, String) {
    let body = br#"{"not":"read by anyone"}"#.to_vec();
    (body, routing_key.to_owned(), Uuid::new_v4().to_string())
}

#[tokio::test]
async fn process_managers_get_only_the_events_they_act_on() {
    let mut stack = TestStack::new(2).await;
    stack.topology.groups.push(PROCESS_MANAGERS.to_owned());
    // As a version that bound every event to every group left it, then declared again now.
    let routing = std::mem::take(&mut stack.topology.routing);
    stack.declare().await;
    stack.topology.routing = routing;
    stack.declare().await;

    stack
        .publish_raw(&[
            message("Quote.LineItemAdded"),
            message("Quote.LineItemAdded"),
            message("Quote.QuoteSubmitted"),
            message("Contract.ContractActivated"),
            message("Account.AccountOpened"),
        ])
        .await;

    assert_eq!(
        waiting(&stack, READ_MODELS).await,
        5,
        "read models get every event"
    );
    assert_eq!(
        waiting(&stack, PROCESS_MANAGERS).await,
        2,
        "process managers get the submission and the activation, not the line items"
    );
}

#[test]
fn every_process_manager_subscribes_to_what_it_handles() {
    let keys = projections::process::subscriptions();
    for key in [
        "Quote.QuoteSubmitted",
        "Quote.QuoteAccepted",
        "Quote.QuoteDrafted",
    ] {
        assert!(keys.iter().any(|k| k == key), "{key} missing from {keys:?}");
    }
    assert!(!keys.iter().any(|k| k.contains("LineItem")), "{keys:?}");
}
