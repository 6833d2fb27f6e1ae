//! Throughput and projection-lag benchmark against the real stack (`make bench`).
//!
//! Prints: commands/s over HTTP for a mix of account commands at concurrency 8 and 32; p50/p99
//! projection lag (command reply → visible through GraphQL); and pgbench's single-row INSERT
//! transactions/s on the same Postgres at the same concurrency, so the ratio can be read off.
#[path = "../tests/api/helpers.rs"]
mod helpers;

use std::time::{Duration, Instant};

use futures::StreamExt;
use helpers::{open_account, Api, TestStack};
use serde_json::json;
use uuid::Uuid;

const COMMANDS_PER_RUN: usize = 4000;
const ACCOUNTS: usize = 200;
const LAG_SAMPLES: usize = 300;

#[tokio::main]
async fn main() {
    let stack = TestStack::new().await;
    let tenant = stack.create_tenant("bench").await;
    let server = stack.spawn(&["serve"]).await;
    let api = Api::new(&server);
    let token = api.login(&tenant).await;
    let ids: Vec<Uuid> = (0..ACCOUNTS).map(|_| Uuid::new_v4()).collect();
    for (n, id) in ids.iter().enumerate() {
        api.ok(&token, *id, open_account(&format!("bench-{n}")))
            .await;
    }
    println!("b2b benchmark ({COMMANDS_PER_RUN} commands per run, {ACCOUNTS} accounts)");
    for concurrency in [8, 32] {
        let per_second = command_throughput(&api, &token, &ids, concurrency).await;
        let inserts = pgbench_inserts(&stack.database_url, concurrency);
        println!(
            "concurrency {concurrency:>2}: {per_second:>8.0} commands/s over HTTP | pgbench single-row INSERT {inserts:>8.0} tx/s | ratio {:.2}",
            per_second / inserts
        );
    }
    let (p50, p99) = projection_lag(&api, &token, &ids).await;
    println!("projection lag (reply → visible in GraphQL), {LAG_SAMPLES} samples: p50 {p50:.1} ms, p99 {p99:.1} ms");
}

/// A mix of the commands clients send most: detail updates, quota and tier changes.
fn command_body(n: usize) -> serde_json::Value {
    match n % 4 {
        0 | 1 => json!({"type": "UpdateAccountDetails", "name": format!("name-{n}")}),
        2 => json!({"type": "SetApiQuota", "requests_per_minute": n % 1000 + 1}),
        _ => {
            let tier = ["Standard", "Gold", "Enterprise"][n % 3];
            json!({"type": "ChangeTier", "tier": tier})
        }
    }
}

async fn command_throughput(api: &Api, token: &str, ids: &[Uuid], concurrency: usize) -> f64 {
    let started = Instant::now();
    let done = futures::stream::iter(0..COMMANDS_PER_RUN)
        .map(|n| api.ok(token, ids[n % ids.len()], command_body(n)))
        .buffer_unordered(concurrency)
        .count()
        .await;
    done as f64 / started.elapsed().as_secs_f64()
}

async fn projection_lag(api: &Api, token: &str, ids: &[Uuid]) -> (f64, f64) {
    let mut lags = Vec::with_capacity(LAG_SAMPLES);
    for n in 0..LAG_SAMPLES {
        let id = ids[n % ids.len()];
        let version = api.ok(token, id, command_body(n)).await;
        let replied = Instant::now();
        let query = format!(r#"{{ account(id: "{id}") {{ version }} }}"#);
        loop {
            let reply = api.graphql(token, &query, None).await;
            if reply["data"]["account"]["version"].as_u64() >= Some(version) {
                break;
            }
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        lags.push(replied.elapsed().as_secs_f64() * 1000.0);
    }
    lags.sort_by(f64::total_cmp);
    (percentile(&lags, 0.50), percentile(&lags, 0.99))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// The ceiling: pgbench committing one-row INSERT transactions for 10 s.
fn pgbench_inserts(database_url: &str, concurrency: usize) -> f64 {
    let script = std::env::temp_dir().join(format!("b2b-insert-{}.sql", Uuid::new_v4()));
    std::fs::write(
        &script,
        "insert into pgbench_ceiling (v) values (:client_id);\n",
    )
    .unwrap();
    let psql = std::process::Command::new("/usr/lib/postgresql/15/bin/psql")
        .args([
            database_url,
            "-qc",
            "create table if not exists pgbench_ceiling (id bigserial primary key, v int)",
        ])
        .status()
        .unwrap();
    assert!(psql.success());
    let output = std::process::Command::new("/usr/lib/postgresql/15/bin/pgbench")
        .args([
            "-n",
            "-T",
            "10",
            "-c",
            &concurrency.to_string(),
            "-j",
            "2",
            "-f",
        ])
        .arg(&script)
        .arg(database_url)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&script);
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .find_map(|line| line.strip_prefix("tps = "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|tps| tps.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "pgbench printed no tps: {text}{}",
                String::from_utf8_lossy(&output.stderr)
            )
        })
}
