//! Rebuild speed against the real stack (`cargo bench --bench rebuild`).
//!
//! Seeds a fresh database with at least EVENTS events, quotes with their lines (copies of a
//! quote the running stack wrote, drafted and given LINES lines through the real API, inserted
//! in many transactions so commit order is realistic) and accounts with their changes, then
//! runs the real `b2b projections rebuild <name>` for every read model and prints what it
//! reports: events of the store replayed per second while the old tables kept serving, and how
//! long the swap transaction took.
#[path = "../tests/api/helpers.rs"]
mod helpers;

use std::time::{Duration, Instant};

use helpers::{open_account, Api, TestStack};
use serde_json::{json, Value};
use uuid::Uuid;

/// Events seeded (at least).
const EVENTS: i64 = 1_000_000;
/// Lines per quote: a quote stream is its draft and its lines.
const LINES: i64 = 9;
/// Accounts get a tenth of the streams, each opened and renamed.
const ACCOUNT_EVENTS: i64 = 2;
const STREAMS_PER_TRANSACTION: i64 = 1_000;

#[tokio::main]
async fn main() {
    let stack = TestStack::new().await;
    seed_templates(&stack).await;
    let started = Instant::now();
    let quote_events = LINES + 1;
    let per_chunk =
        STREAMS_PER_TRANSACTION * quote_events + STREAMS_PER_TRANSACTION / 10 * ACCOUNT_EVENTS;
    for chunk in 0..(EVENTS + per_chunk - 1) / per_chunk {
        copy_streams(
            &stack,
            "Quote",
            quote_events,
            STREAMS_PER_TRANSACTION,
            chunk,
        )
        .await;
        copy_streams(
            &stack,
            "Account",
            ACCOUNT_EVENTS,
            STREAMS_PER_TRANSACTION / 10,
            chunk,
        )
        .await;
    }
    let stored: i64 = sqlx::query_scalar("select count(*) from events")
        .fetch_one(&stack.db)
        .await
        .unwrap();
    println!(
        "b2b rebuild benchmark: {stored} events seeded in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    for name in ["quotes", "accounts", "users", "approvals", "contracts"] {
        let report = rebuild(&stack, name).await;
        println!(
            "{name:>9}: {:>8.0} events/s ({} events in {:.1} s), swap {:.0} ms, {} streams",
            report["events_per_second"].as_f64().unwrap(),
            report["replayed"],
            report["replay_seconds"].as_f64().unwrap(),
            report["swap_millis"].as_f64().unwrap(),
            report["streams"],
        );
    }
}

/// An account opened and renamed, and a quote drafted with LINES lines, through the real API:
/// the streams every copy is made of.
async fn seed_templates(stack: &TestStack) {
    let tenant = stack.create_tenant("bench").await;
    let server = stack.spawn(&["serve"]).await;
    let api = Api::new(&server);
    let token = api.login(&tenant).await;
    let account = Uuid::new_v4();
    api.ok(&token, account, open_account("template")).await;
    api.ok(
        &token,
        account,
        json!({"type": "UpdateAccountDetails", "name": "renamed"}),
    )
    .await;
    let quote = Uuid::new_v4();
    let valid_until = (chrono::Utc::now() + chrono::Duration::days(30)).to_rfc3339();
    let draft = json!({"type": "DraftQuote", "account_id": account, "title": "Template",
        "valid_until": valid_until});
    api.ok_in(&token, "quotes", quote, draft).await;
    for n in 0..LINES {
        let line = json!({"type": "AddLineItem", "line_id": Uuid::new_v4(),
            "sku": format!("SKU-{n}"), "description": "Widget",
            "quantity": format!("{}", n + 1), "unit_price": "19.90"});
        api.ok_in(&token, "quotes", quote, line).await;
    }
    server.kill().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
}

/// `streams` new streams of `aggregate_type`, each a copy of the first `events` events of that
/// type's template stream, in one transaction. One statement per sequence number: the
/// hash-chain trigger finds an event's predecessor only once an earlier statement has inserted
/// it.
async fn copy_streams(
    stack: &TestStack,
    aggregate_type: &str,
    events: i64,
    streams: i64,
    chunk: i64,
) {
    let ids: Vec<String> = (0..streams).map(|_| Uuid::new_v4().to_string()).collect();
    let mut tx = stack.db.begin().await.unwrap();
    for sequence in 1..=events {
        sqlx::query(
            "insert into events (aggregate_type, aggregate_id, sequence, event_type, \
                 event_version, payload, metadata) \
             select $3, s.id, $2, t.event_type, t.event_version, t.payload, t.metadata \
             from unnest($1::text[]) s(id) \
             join (select * from events where aggregate_type = $3 and aggregate_id = \
                       (select aggregate_id from events where aggregate_type = $3 \
                        order by global_position limit 1)) t \
               on t.sequence = $2",
        )
        .bind(&ids)
        .bind(sequence)
        .bind(aggregate_type)
        .execute(&mut *tx)
        .await
        .unwrap_or_else(|e| panic!("seeding chunk {chunk}: {e}"));
    }
    tx.commit().await.unwrap();
}

async fn rebuild(stack: &TestStack, name: &str) -> Value {
    let output = stack
        .command(&["projections", "rebuild", name])
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "rebuild of {name} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the rebuild prints a JSON report")
}
