//! Rebuild speed against the real stack (`cargo bench --bench rebuild`).
//!
//! Seeds a fresh database with EVENTS account events (copies of real ones the running stack
//! wrote, inserted in many transactions so commit order is realistic), then runs the real
//! `b2b projections rebuild accounts` and prints what it reports: events replayed per second
//! while the old tables kept serving, and how long the swap transaction took.
#[path = "../tests/api/helpers.rs"]
mod helpers;

use std::time::{Duration, Instant};

use helpers::{open_account, Api, TestStack};
use serde_json::{json, Value};
use uuid::Uuid;

const EVENTS: i64 = 200_000;
const EVENTS_PER_STREAM: i64 = 10;
const STREAMS_PER_TRANSACTION: i64 = 1_000;

#[tokio::main]
async fn main() {
    let stack = TestStack::new().await;
    seed_templates(&stack).await;
    let started = Instant::now();
    for chunk in 0..EVENTS / EVENTS_PER_STREAM / STREAMS_PER_TRANSACTION {
        copy_streams(&stack, chunk).await;
    }
    let stored: i64 =
        sqlx::query_scalar("select count(*) from events where aggregate_type = 'Account'")
            .fetch_one(&stack.db)
            .await
            .unwrap();
    println!(
        "b2b rebuild benchmark: {stored} account events seeded in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    for batch_size in ["1000", "5000"] {
        let report = rebuild(&stack, batch_size).await;
        println!(
            "batch {batch_size:>5}: {:>8.0} events/s ({} events in {:.1} s), swap {:.0} ms, {} streams",
            report["events_per_second"].as_f64().unwrap(),
            report["replayed"],
            report["replay_seconds"].as_f64().unwrap(),
            report["swap_millis"].as_f64().unwrap(),
            report["streams"],
        );
    }
}

/// One account opened and renamed through the real API: the events every copy is made of.
async fn seed_templates(stack: &TestStack) {
    let tenant = stack.create_tenant("bench").await;
    let server = stack.spawn(&["serve"]).await;
    let api = Api::new(&server);
    let token = api.login(&tenant).await;
    let id = Uuid::new_v4();
    api.ok(&token, id, open_account("template")).await;
    api.ok(
        &token,
        id,
        json!({"type": "UpdateAccountDetails", "name": "renamed"}),
    )
    .await;
    server.kill().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
}

/// STREAMS_PER_TRANSACTION new accounts of EVENTS_PER_STREAM events each, in one transaction.
/// One statement per sequence number: the hash-chain trigger finds an event's predecessor only
/// once an earlier statement has inserted it.
async fn copy_streams(stack: &TestStack, chunk: i64) {
    let ids: Vec<String> = (0..STREAMS_PER_TRANSACTION)
        .map(|_| Uuid::new_v4().to_string())
        .collect();
    let mut tx = stack.db.begin().await.unwrap();
    for sequence in 1..=EVENTS_PER_STREAM {
        sqlx::query(
            "insert into events (aggregate_type, aggregate_id, sequence, event_type, \
                 event_version, payload, metadata) \
             select 'Account', s.id, $2, t.event_type, t.event_version, t.payload, t.metadata \
             from unnest($1::text[]) s(id) \
             join (select * from events where aggregate_type = 'Account' and aggregate_id = \
                       (select aggregate_id from events where aggregate_type = 'Account' \
                        order by global_position limit 1)) t \
               on t.sequence = least($2, 2)",
        )
        .bind(&ids)
        .bind(sequence)
        .execute(&mut *tx)
        .await
        .unwrap_or_else(|e| panic!("seeding chunk {chunk}: {e}"));
    }
    tx.commit().await.unwrap();
}

async fn rebuild(stack: &TestStack, batch_size: &str) -> Value {
    let output = stack
        .command(&[
            "projections",
            "rebuild",
            "accounts",
            "--batch-size",
            batch_size,
        ])
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "rebuild failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the rebuild prints a JSON report")
}
