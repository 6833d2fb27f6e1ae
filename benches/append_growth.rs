//! Append cost as the store grows (`make bench`): the write-path workload (`support/workload.rs`)
//! against `b2b command-api` on an empty store, then again, on the same process, after the store
//! was filled to GROWN_TO events (`support/seed.rs`) and vacuumed as autovacuum would. Prints
//! both windows, their ratio, and the append statement's mean execution time in each.
#[path = "../tests/api/helpers.rs"]
mod helpers;
#[path = "support/seed.rs"]
mod seed;
#[path = "support/workload.rs"]
mod workload;

use helpers::{Api, Process, TestStack};
use workload::{Window, Workload};

/// Events in the grown store; `B2B_BENCH_GROWN_TO` overrides it (a quicker look).
const GROWN_TO: i64 = 10_000_000;
const CONCURRENCY: usize = 8;

#[tokio::main]
async fn main() {
    let stack = TestStack::new().await;
    workload::count_statements(&stack).await;
    let grown_to = std::env::var("B2B_BENCH_GROWN_TO")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(GROWN_TO);
    let tenant = stack.create_tenant("growth").await;
    let server = stack
        .spawn_with_env(&["command-api"], &[("B2B_CLOCK", "system")])
        .await;
    let api = Api::new(&server);
    let workload = Workload::prepare(&stack, &api, &tenant).await;
    println!("b2b append cost as the store grows: command-api, concurrency {CONCURRENCY}");
    let empty = window(&stack, &api, &server, &workload).await;
    empty.0.print("empty", CONCURRENCY, None, None);
    let stored = seed::fill(&stack, "filler", grown_to).await;
    sqlx::query("vacuum analyze events")
        .execute(&stack.db)
        .await
        .unwrap();
    let grown = window(&stack, &api, &server, &workload).await;
    grown.0.print("grown", CONCURRENCY, None, None);
    println!(
        "append rate at {stored} events: {:.2} of the empty store's | append statement mean \
         {:.3} ms empty, {:.3} ms grown",
        grown.0.per_second / empty.0.per_second,
        empty.1,
        grown.1,
    );
    server.kill().await;
}

/// A window of the workload, and the append statement's mean execution time during it.
async fn window(
    stack: &TestStack,
    api: &Api,
    server: &Process,
    workload: &Workload,
) -> (Window, f64) {
    sqlx::query("select pg_stat_statements_reset()")
        .execute(&stack.db)
        .await
        .unwrap();
    let window = workload.run(stack, api, server, CONCURRENCY).await;
    let append_ms: f64 = sqlx::query_scalar(
        "select coalesce(sum(total_exec_time) / nullif(sum(calls), 0), 0)::float8 \
           from pg_stat_statements where query ilike '%insert into events%'",
    )
    .fetch_one(&stack.db)
    .await
    .unwrap();
    (window, append_ms)
}
