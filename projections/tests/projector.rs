//! The projector against the real stack: Postgres, RabbitMQ, the relay.
//! Needs `deploy/local/stack.sh up` and `source deploy/local/env.sh`.
mod support;

use aggregates::account::{AccountCommand, Tier};
use chrono::Utc;
use event_store::StoredEvent;
use rust_decimal::Decimal;
use serde_json::json;
use support::{AccountRow, TestStack};
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_accounts_match_the_events_and_checkpoints_reach_the_last_sequence() {
    let mut stack = TestStack::new(4).await;
    stack.start_relay();
    stack.start_projector();
    let accounts = stack.accounts();
    let (busy, reinstated, closed) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());

    accounts.open(busy, "Busy").await;
    let details = AccountCommand::UpdateAccountDetails {
        name: Some("Busy Corp".into()),
        legal_name: None,
        country: Some("fr".into()),
        billing_email: None,
    };
    accounts.as_user(busy, details).await;
    accounts
        .as_user(busy, AccountCommand::ChangeTier { tier: Tier::Gold })
        .await;
    let amount: Decimal = "1000.50".parse().unwrap();
    accounts
        .as_user(busy, AccountCommand::SetCreditLimit { amount })
        .await;
    let quota = AccountCommand::SetApiQuota {
        requests_per_minute: 600,
    };
    accounts.as_user(busy, quota).await;
    let quote_id = Uuid::new_v4();
    accounts
        .as_system(busy, AccountCommand::ActivateAccount { quote_id })
        .await;
    let (first, second) = (Uuid::new_v4(), Uuid::new_v4());
    for contract_id in [first, second] {
        let activated = AccountCommand::RecordContractActivated { contract_id };
        accounts.as_system(busy, activated).await;
    }
    let ended = AccountCommand::RecordContractEnded { contract_id: first };
    accounts.as_system(busy, ended).await;
    let suspend = AccountCommand::SuspendAccount {
        reason: "Late payment".into(),
    };
    let busy_version = accounts.as_user(busy, suspend).await;

    accounts.open(reinstated, "Back").await;
    accounts
        .as_system(reinstated, AccountCommand::ActivateAccount { quote_id })
        .await;
    let suspend = AccountCommand::SuspendAccount {
        reason: "Audit".into(),
    };
    accounts.as_user(reinstated, suspend).await;
    let reinstated_version = accounts
        .as_user(reinstated, AccountCommand::ReinstateAccount {})
        .await;

    accounts.open(closed, "Gone").await;
    let close = AccountCommand::CloseAccount {
        reason: "Duplicate".into(),
    };
    let closed_version = accounts.as_user(closed, close).await;

    let row = stack.projected(busy, busy_version as i64).await;
    let expected = AccountRow {
        name: "Busy Corp".into(),
        country: "FR".into(),
        tier: "Gold".into(),
        status: "Suspended".into(),
        credit_limit: Some(amount),
        api_quota_per_minute: Some(600),
        status_reason: Some("Late payment".into()),
        active_contracts: 1,
        ..opened_row(&stack, busy, "Busy", &stack.events(busy).await)
    };
    assert_eq!(row, expected);
    assert_eq!(busy_version, 10);

    let row = stack.projected(reinstated, reinstated_version as i64).await;
    let expected = AccountRow {
        status: "Active".into(),
        status_reason: None,
        ..opened_row(&stack, reinstated, "Back", &stack.events(reinstated).await)
    };
    assert_eq!(row, expected, "reinstating clears the suspension reason");

    let row = stack.projected(closed, closed_version as i64).await;
    let expected = AccountRow {
        status: "Closed".into(),
        status_reason: Some("Duplicate".into()),
        ..opened_row(&stack, closed, "Gone", &stack.events(closed).await)
    };
    assert_eq!(row, expected);

    for (id, version) in [
        (busy, busy_version),
        (reinstated, reinstated_version),
        (closed, closed_version),
    ] {
        let checkpoint = stack.checkpoint(id).await.expect("checkpoint");
        assert_eq!(checkpoint.last_sequence, version as i64);
    }
    assert_eq!(stack.parked().await, 0);
    stack.tear_down().await;
}

/// The row right after opening, stamped with the stream's last event: the caller overrides
/// what later events changed.
fn opened_row(stack: &TestStack, id: Uuid, name: &str, events: &[StoredEvent]) -> AccountRow {
    let (first, last) = (events.first().unwrap(), events.last().unwrap());
    let last_user = last.meta_uuid("user_id");
    AccountRow {
        id,
        tenant_id: stack.tenant_id,
        name: name.into(),
        legal_name: format!("{name} GmbH"),
        country: "DE".into(),
        billing_email: "billing@example.com".into(),
        currency: "EUR".into(),
        tier: "Standard".into(),
        status: "Prospect".into(),
        credit_limit: None,
        api_quota_per_minute: None,
        status_reason: None,
        active_contracts: 0,
        version: last.sequence,
        opened_at: first.recorded_at,
        opened_by: Some(stack.user_id),
        updated_at: last.recorded_at,
        updated_by: last_user,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redelivered_events_change_nothing() {
    // One queue, so a message published later is handled after every earlier one.
    let mut stack = TestStack::new(1).await;
    stack.start_relay();
    stack.start_projector();
    let accounts = stack.accounts();
    let id = Uuid::new_v4();
    accounts.open(id, "Twice").await;
    for _ in 0..2 {
        let contract_id = Uuid::new_v4();
        accounts
            .as_system(id, AccountCommand::RecordContractActivated { contract_id })
            .await;
    }
    let version = accounts
        .as_user(id, AccountCommand::ChangeTier { tier: Tier::Gold })
        .await;
    let row_before = stack.projected(id, version as i64).await;
    let checkpoint_before = stack.checkpoint(id).await;

    let events = stack.events(id).await;
    let mut again: Vec<StoredEvent> = events.iter().rev().cloned().collect();
    again.extend(events.iter().cloned());
    stack.publish(&again).await;
    // The sentinel's event queues up behind the duplicates: once it is projected, so are they.
    let sentinel = Uuid::new_v4();
    accounts.open(sentinel, "Sentinel").await;
    stack.projected(sentinel, 1).await;

    assert_eq!(stack.account_row(id).await.as_ref(), Some(&row_before));
    assert_eq!(
        row_before.active_contracts, 2,
        "counters did not count the duplicates"
    );
    assert_eq!(stack.checkpoint(id).await, checkpoint_before);
    assert_eq!(stack.parked().await, 0);
    stack.tear_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gap_in_deliveries_is_filled_from_the_event_store() {
    let mut stack = TestStack::new(2).await;
    stack.declare().await;
    stack.start_projector();
    let accounts = stack.accounts();
    let id = Uuid::new_v4();
    accounts.open(id, "Gap").await;
    let details = AccountCommand::UpdateAccountDetails {
        name: Some("Gap Two".into()),
        legal_name: None,
        country: None,
        billing_email: Some("ap@gap.example".into()),
    };
    accounts.as_user(id, details).await;
    let tier = AccountCommand::ChangeTier {
        tier: Tier::Enterprise,
    };
    let version = accounts.as_user(id, tier).await;
    assert_eq!(version, 3);

    // With the relay not yet running, its checkpoint is moved past events 1 and 2: they are
    // never published, only event 3 is.
    let moved = sqlx::query(
        "update relay_state set global_position = \
         (select global_position from events where aggregate_id = $1 and sequence = 2)",
    )
    .bind(id.to_string())
    .execute(&stack.admin)
    .await
    .unwrap()
    .rows_affected();
    assert_eq!(moved, 1);
    stack.start_relay();

    let row = stack.projected(id, 3).await;
    let expected = AccountRow {
        name: "Gap Two".into(),
        billing_email: "ap@gap.example".into(),
        tier: "Enterprise".into(),
        ..opened_row(&stack, id, "Gap", &stack.events(id).await)
    };
    assert_eq!(row, expected);
    assert_eq!(stack.checkpoint(id).await.unwrap().last_sequence, 3);
    assert_eq!(stack.parked().await, 0);
    stack.tear_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_messages_are_parked_and_later_events_still_flow() {
    let mut stack = TestStack::new(1).await;
    // Declared before the first hand-made publish: the workers declare it too, but in their
    // own time.
    stack.declare().await;
    stack.start_relay();
    stack.start_projector();
    let accounts = stack.accounts();

    let poisoned = Uuid::new_v4();
    let poison = StoredEvent {
        global_position: 0,
        aggregate_type: "Account".into(),
        aggregate_id: poisoned.to_string(),
        sequence: 1,
        event_type: "AccountTeleported".into(),
        event_version: "1.0".into(),
        payload: json!({ "AccountTeleported": { "destination": "Mars" } }),
        metadata: json!({ "tenant_id": stack.tenant_id, "correlation_id": Uuid::new_v4() }),
        tenant_id: stack.tenant_id,
        recorded_at: Utc::now(),
    };
    stack.publish(&[poison]).await;
    let later = Uuid::new_v4();
    accounts.open(later, "Later").await;
    stack.projected(later, 1).await;
    support::eventually("the poison message to be parked", || async {
        (stack.parked().await == 1).then_some(())
    })
    .await;
    assert_eq!(stack.account_row(poisoned).await, None);
    assert_eq!(stack.checkpoint(poisoned).await, None);

    // A body that is not a stored event cannot improve with retries: parked at once.
    let garbage = (
        b"not an event".to_vec(),
        "Account.Garbage".into(),
        Uuid::new_v4().to_string(),
    );
    stack.publish_raw(&[garbage]).await;
    support::eventually("the unreadable message to be parked", || async {
        (stack.parked().await == 2).then_some(())
    })
    .await;
    let last = Uuid::new_v4();
    accounts.open(last, "Last").await;
    stack.projected(last, 1).await;
    assert_eq!(stack.parked().await, 2);
    stack.tear_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_projector_carries_on_after_the_broker_drops_its_connection() {
    let mut stack = TestStack::new(2).await;
    stack.start_relay();
    stack.start_projector();
    let accounts = stack.accounts();
    let id = Uuid::new_v4();
    accounts.open(id, "Steady").await;
    stack.projected(id, 1).await;

    let name = stack.projector_connection();
    assert_eq!(support::drop_broker_connections(&name), 1);
    let version = accounts
        .as_user(id, AccountCommand::ChangeTier { tier: Tier::Gold })
        .await;
    let row = stack.projected(id, version as i64).await;
    assert_eq!(row.tier, "Gold");
    let other = Uuid::new_v4();
    accounts.open(other, "Fresh").await;
    stack.projected(other, 1).await;

    // Drops that land mid-recovery or mid-setup too.
    for _ in 0..6 {
        support::drop_broker_connections(&name);
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    let version = accounts
        .as_user(
            id,
            AccountCommand::ChangeTier {
                tier: Tier::Enterprise,
            },
        )
        .await;
    assert_eq!(stack.projected(id, version as i64).await.tier, "Enterprise");

    // A consumer left behind by a dropped connection would hold a single-active-consumer slot
    // without ever acking: exactly one connection and one consumer per queue must remain.
    support::eventually(
        "one projector connection and one consumer per queue",
        || async {
            let consumers = stack.consumers_per_queue().await;
            let connections = support::broker_connections(&name);
            (connections == 1 && consumers.iter().all(|c| *c == 1)).then_some(())
        },
    )
    .await;
    let last = Uuid::new_v4();
    accounts.open(last, "Last").await;
    stack.projected(last, 1).await;
    assert_eq!(stack.parked().await, 0);
    stack.tear_down().await;
}
