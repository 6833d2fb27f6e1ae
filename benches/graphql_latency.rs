//! GraphQL latency benchmark (`make bench`): p50/p99 for a 50-row page of quotes with their
//! lines at concurrency 16, while commands are being written.
#[path = "../tests/api/helpers.rs"]
mod helpers;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use helpers::{open_account, Api, TestStack};
use serde_json::json;
use uuid::Uuid;

const QUOTES: usize = 300;
const LINES_PER_QUOTE: usize = 3;
const CONCURRENCY: usize = 16;
const REQUESTS: usize = 2000;
const PAGE: &str = "{ quotes(first: 50) { totalCount edges { node { id status total \
    lines { sku quantity unitPrice lineTotal } } } } }";

#[tokio::main]
async fn main() {
    let stack = TestStack::new().await;
    let tenant = stack.create_tenant("graphbench").await;
    let server = stack.spawn(&["serve"]).await;
    let api = Arc::new(Api::new(&server));
    let token = api.login(&tenant).await;
    let account = Uuid::new_v4();
    api.ok(&token, account, open_account("Benchco")).await;
    let last = seed_quotes(&api, &token, account).await;
    // Wait until the last quote is visible, so every page is a full one.
    api.graphql(&token, "{ quotes(first: 1) { totalCount } }", Some(last))
        .await;

    let writing = Arc::new(AtomicBool::new(true));
    let written = Arc::new(AtomicUsize::new(0));
    let writer = tokio::spawn(write_commands(
        api.clone(),
        token.clone(),
        writing.clone(),
        written.clone(),
    ));
    let started = Instant::now();
    let mut latencies: Vec<f64> = futures::stream::iter(0..REQUESTS)
        .map(|_| {
            let (api, token) = (api.clone(), token.clone());
            async move {
                let sent = Instant::now();
                let reply = api.graphql(&token, PAGE, None).await;
                assert_eq!(
                    reply["data"]["quotes"]["edges"].as_array().map(Vec::len),
                    Some(50),
                    "{reply}"
                );
                sent.elapsed().as_secs_f64() * 1000.0
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let elapsed = started.elapsed().as_secs_f64();
    writing.store(false, Ordering::Relaxed);
    writer.await.unwrap();
    latencies.sort_by(f64::total_cmp);
    let at = |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize];
    println!(
        "GraphQL 50 quotes with {LINES_PER_QUOTE} lines each, concurrency {CONCURRENCY}, {REQUESTS} requests: \
         p50 {:.1} ms, p99 {:.1} ms, {:.0} pages/s, while {} commands were written ({:.0}/s)",
        at(0.50),
        at(0.99),
        REQUESTS as f64 / elapsed,
        written.load(Ordering::Relaxed),
        written.load(Ordering::Relaxed) as f64 / elapsed,
    );
}

/// Quotes with lines, drafted over HTTP; returns the last quote's id and version.
async fn seed_quotes(api: &Api, token: &str, account: Uuid) -> (Uuid, u64) {
    let valid_until = (chrono::Utc::now() + chrono::Duration::days(30)).to_rfc3339();
    let mut last = (Uuid::nil(), 0);
    for n in 0..QUOTES {
        let quote = Uuid::new_v4();
        let draft = json!({"type": "DraftQuote", "account_id": account, "title": format!("Q{n}"), "valid_until": valid_until});
        api.ok_in(token, "quotes", quote, draft).await;
        for l in 0..LINES_PER_QUOTE {
            let line = json!({"type": "AddLineItem", "line_id": Uuid::new_v4(), "sku": format!("S{l}"),
                "description": "Part", "quantity": format!("{}", l * 20 + 1), "unit_price": "12.50"});
            last = (quote, api.ok_in(token, "quotes", quote, line).await);
        }
    }
    last
}

/// Keeps account commands flowing until told to stop, four at a time.
async fn write_commands(
    api: Arc<Api>,
    token: String,
    writing: Arc<AtomicBool>,
    written: Arc<AtomicUsize>,
) {
    let ids: Vec<Uuid> = (0..8).map(|_| Uuid::new_v4()).collect();
    for id in &ids {
        api.ok(&token, *id, open_account("Writer")).await;
    }
    let mut n = 0usize;
    while writing.load(Ordering::Relaxed) {
        let batch = (0..4).map(|k| {
            let id = ids[(n + k) % ids.len()];
            api.ok(
                &token,
                id,
                json!({"type": "SetApiQuota", "requests_per_minute": (n + k) % 500 + 1}),
            )
        });
        futures::future::join_all(batch).await;
        n += 4;
        written.fetch_add(4, Ordering::Relaxed);
    }
}
