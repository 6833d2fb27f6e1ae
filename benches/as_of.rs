//! `asOf` benchmark (`make bench`): an account's state at scattered past times on a stream of
//! 10,000 events, through GraphQL. The first answer folds from nothing; later ones start from
//! the nearest kept state (every 100th version), so what is measured is the steady state a
//! dashboard or an auditor paging through history sees.
#[path = "../tests/api/helpers.rs"]
mod helpers;

use std::time::Instant;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use helpers::{open_account, Api, TestStack};
use serde_json::json;
use uuid::Uuid;

const EVENTS: usize = 10_000;
const REQUESTS: usize = 500;
/// Commands in flight while seeding: one stream, so they queue on its turn lock anyway.
const SEEDING: usize = 4;

#[tokio::main]
async fn main() {
    let stack = TestStack::new().await;
    let tenant = stack.create_tenant("asofbench").await;
    let server = stack.spawn(&["command-api"]).await;
    let api = Api::new(&server);
    let token = api.login(&tenant).await;
    let account = Uuid::new_v4();
    let started = Instant::now();
    api.ok(&token, account, open_account("Historic")).await;
    futures::stream::iter(1..EVENTS)
        .map(|n| {
            let update = json!({"type": "SetApiQuota", "requests_per_minute": n % 500 + 1});
            let (api, token) = (&api, &token);
            async move { api.ok(token, account, update).await }
        })
        .buffer_unordered(SEEDING)
        .collect::<Vec<_>>()
        .await;
    println!(
        "asOf: seeded one account stream of {EVENTS} events in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let times: Vec<DateTime<Utc>> = sqlx::query_scalar(
        "select recorded_at from events where aggregate_id = $1 order by sequence",
    )
    .bind(account.to_string())
    .fetch_all(&stack.db)
    .await
    .unwrap();
    assert_eq!(times.len(), EVENTS);

    let query = stack.spawn(&["query-api"]).await;
    let api = Api::new(&query);
    let ask = |at: DateTime<Utc>| {
        let (api, token) = (&api, &token);
        async move {
            let query = format!(
                r#"{{ asOf(aggregateType: ACCOUNT, aggregateId: "{account}", at: "{}") {{ version }} }}"#,
                at.to_rfc3339()
            );
            let sent = Instant::now();
            let reply = api.graphql(token, &query, None).await;
            assert!(
                reply["data"]["asOf"]["version"].as_i64().is_some(),
                "{reply}"
            );
            sent.elapsed().as_secs_f64() * 1000.0
        }
    };
    let first = ask(times[EVENTS - 1]).await;
    let mut latencies = Vec::with_capacity(REQUESTS);
    // Times spread over the whole stream in a scattered order (7,919 is prime to EVENTS).
    for n in 0..REQUESTS {
        latencies.push(ask(times[(n * 7_919 + 13) % EVENTS]).await);
    }
    latencies.sort_by(f64::total_cmp);
    let at = |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize];
    println!(
        "asOf on a {EVENTS}-event stream, {REQUESTS} scattered times one at a time: \
         p50 {:.1} ms, p99 {:.1} ms (the first, folding all {EVENTS} events: {first:.1} ms)",
        at(0.50),
        at(0.99),
    );
}
