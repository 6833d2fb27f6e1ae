//! A store filled fast for the benchmarks that need a large one: quotes with their lines and
//! accounts with their changes, copies of streams the running stack wrote through the real API,
//! inserted in many transactions so commit order is realistic.
use std::time::{Duration, Instant};

use serde_json::json;
use uuid::Uuid;

use crate::helpers::{open_account, Api, TestStack};

/// Lines per quote: a quote stream is its draft and its lines.
pub const LINES: i64 = 9;
/// Accounts get a tenth of the streams, each opened and renamed.
const ACCOUNT_EVENTS: i64 = 2;
const STREAMS_PER_TRANSACTION: i64 = 1_000;

/// Adds at least `events` events (in a tenant of their own, `slug`) and returns how many the
/// store holds then.
pub async fn fill(stack: &TestStack, slug: &str, events: i64) -> i64 {
    let (account, quote) = write_templates(stack, slug).await;
    let started = Instant::now();
    let quote_events = LINES + 1;
    let per_chunk =
        STREAMS_PER_TRANSACTION * quote_events + STREAMS_PER_TRANSACTION / 10 * ACCOUNT_EVENTS;
    for chunk in 0..(events + per_chunk - 1) / per_chunk {
        copy_streams(
            stack,
            ("Quote", quote),
            quote_events,
            STREAMS_PER_TRANSACTION,
            chunk,
        )
        .await;
        let accounts = STREAMS_PER_TRANSACTION / 10;
        copy_streams(stack, ("Account", account), ACCOUNT_EVENTS, accounts, chunk).await;
    }
    let stored: i64 = sqlx::query_scalar("select count(*) from events")
        .fetch_one(&stack.db)
        .await
        .unwrap();
    println!(
        "{stored} events in the store, seeded in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    stored
}

/// An account opened and renamed, and a quote drafted with LINES lines, through the real API:
/// the streams every copy is made of.
async fn write_templates(stack: &TestStack, slug: &str) -> (Uuid, Uuid) {
    let tenant = stack.create_tenant(slug).await;
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
    (account, quote)
}

/// `streams` new streams, each a copy of the first `events` events of the `template` stream, in
/// one transaction. One statement per sequence number: the hash-chain trigger finds an event's
/// predecessor only once an earlier statement has inserted it.
async fn copy_streams(
    stack: &TestStack,
    (aggregate_type, template): (&str, Uuid),
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
             join events t on t.aggregate_type = $3 and t.aggregate_id = $4 \
              and t.sequence = $2",
        )
        .bind(&ids)
        .bind(sequence)
        .bind(aggregate_type)
        .bind(template.to_string())
        .execute(&mut *tx)
        .await
        .unwrap_or_else(|e| panic!("seeding chunk {chunk}: {e}"));
    }
    tx.commit().await.unwrap();
}
