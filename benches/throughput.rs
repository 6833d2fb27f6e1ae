//! Write-path benchmark against the real stack (`make bench`).
//!
//! The client-app workload: 20 % `DraftQuote`, 80 % `AddLineItem` on a random quote drafted so
//! far, sent over HTTP by 8 Operator users at concurrency 8 and 32, first against `b2b serve`
//! (everything in one process), then against `b2b command-api` alone. For each window it
//! prints commands/s, reply latency p50/p99, the ratio to pgbench's single-row INSERT ceiling
//! measured in the same run, SQL statements per command (pg_stat_statements), CPU ms per command
//! of b2b, Postgres and RabbitMQ (from /proc), and for `serve` how long after the window the
//! read models caught up and the process's peak RSS. Then projection lag (reply → visible in
//! GraphQL) at a paced load.
#[path = "../tests/api/helpers.rs"]
mod helpers;

#[path = "support/workload.rs"]
mod workload;

use std::time::{Duration, Instant};

use helpers::{Api, Process, TestStack};
use serde_json::{json, Value};
use uuid::Uuid;
use workload::{percentile, Workload, COMMANDS_PER_WINDOW, USERS};

const LAG_SAMPLES: usize = 300;

#[tokio::main]
async fn main() {
    let stack = TestStack::new().await;
    workload::count_statements(&stack).await;
    let tenant = stack.create_tenant("bench").await;
    let ceilings: Vec<(usize, f64)> = [8, 32]
        .into_iter()
        .map(|c| (c, pgbench_inserts(&stack.database.url, c)))
        .collect();
    println!(
        "b2b write-path benchmark: {COMMANDS_PER_WINDOW} commands per window, {USERS} users, \
         20 % DraftQuote / 80 % AddLineItem"
    );
    for (c, tps) in &ceilings {
        println!("pgbench single-row INSERT ceiling at concurrency {c}: {tps:.0} tx/s");
    }

    for mode in ["serve", "command-api"] {
        // The system clock, as in production: the tests' adjustable one reads the database.
        let server = stack
            .spawn_with_env(&[mode], &[("B2B_CLOCK", "system")])
            .await;
        let api = Api::new(&server);
        let workload = Workload::prepare(&stack, &api, &tenant).await;
        for (concurrency, ceiling) in &ceilings {
            let window = workload.run(&stack, &api, &server, *concurrency).await;
            let caught_up = match mode {
                "serve" => Some(caught_up_after(&stack).await),
                _ => None,
            };
            window.print(mode, *concurrency, Some(*ceiling), caught_up);
        }
        if mode == "serve" {
            println!("b2b serve peak RSS: {:.0} MB", peak_rss_mb(&server));
            // Lag on a quiet pipeline: every consumer group has worked off the windows.
            every_consumer_caught_up(&stack).await;
            let (p50, p99) = projection_lag(&api, &workload).await;
            println!(
                "projection lag (reply → visible in GraphQL), {LAG_SAMPLES} samples: \
                 p50 {p50:.1} ms, p99 {p99:.1} ms"
            );
        }
        server.kill().await;
    }
}

/// Seconds until every quote event is in the read model.
async fn caught_up_after(stack: &TestStack) -> f64 {
    let started = Instant::now();
    loop {
        let behind: i64 = sqlx::query_scalar(
            "select ((select count(*) from events where aggregate_type = 'Quote') \
                  - (select coalesce(sum(version), 0) from read.quotes))::bigint",
        )
        .fetch_one(&stack.db)
        .await
        .unwrap();
        if behind == 0 {
            return started.elapsed().as_secs_f64();
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "{behind} events never projected"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until no checkpoint of any projection or process manager is behind its stream (a
/// process manager's stream ends at the last event it subscribes to).
async fn every_consumer_caught_up(stack: &TestStack) {
    let (mut names, mut keys) = (Vec::new(), Vec::new());
    for (name, subscribed) in projections::process::subscriptions_by_process() {
        for key in subscribed {
            names.push(name);
            keys.push(key);
        }
    }
    helpers::eventually_within(
        "every consumer to catch up",
        Duration::from_secs(600),
        || async {
            let behind: i64 = sqlx::query_scalar(
                "select count(*) from projection_checkpoints c \
               join (select aggregate_type, aggregate_id, max(sequence) as last from events \
                      group by 1, 2) e using (aggregate_type, aggregate_id) \
              where c.projection not like 'process.%' and c.last_sequence < e.last",
            )
            .fetch_one(&stack.db)
            .await
            .unwrap();
            let processes_behind: i64 = sqlx::query_scalar(
                "select count(*) from projection_checkpoints c \
               join (select s.projection, e.aggregate_type, e.aggregate_id, \
                            max(e.sequence) as last \
                       from events e join unnest($1::text[], $2::text[]) as s(projection, key) \
                         on e.aggregate_type || '.' || e.event_type = s.key \
                      group by 1, 2, 3) e using (projection, aggregate_type, aggregate_id) \
              where c.last_sequence < e.last",
            )
            .bind(&names)
            .bind(&keys)
            .fetch_one(&stack.db)
            .await
            .unwrap();
            let behind = behind + processes_behind;
            (behind == 0).then_some(())
        },
    )
    .await;
}

fn peak_rss_mb(server: &Process) -> f64 {
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", server.child.id().unwrap())).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|kb| kb.trim().trim_end_matches(" kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Reply → the line visible through GraphQL, one command at a time (on fresh quotes: a quote
/// holds at most 200 lines).
async fn projection_lag(api: &Api, workload: &Workload) -> (f64, f64) {
    let token = &workload.tokens[0];
    let mut lags = Vec::with_capacity(LAG_SAMPLES);
    let mut quote = Uuid::nil();
    for n in 0..LAG_SAMPLES {
        if n.is_multiple_of(100) {
            quote = Uuid::new_v4();
            let valid_until = (chrono::Utc::now() + chrono::Duration::days(30)).to_rfc3339();
            let draft = json!({"type": "DraftQuote", "account_id": workload.accounts[0],
                "title": "Lag probes", "valid_until": valid_until});
            api.ok_in(token, "quotes", quote, draft).await;
        }
        let line = json!({"type": "AddLineItem", "line_id": Uuid::new_v4(), "sku": "LAG",
            "description": "Lag probe", "quantity": "1", "unit_price": format!("{}.00", n + 1)});
        let version = api.ok_in(token, "quotes", quote, line).await;
        let replied = Instant::now();
        let query = format!(r#"{{ quote(id: "{quote}") {{ version }} }}"#);
        loop {
            let reply: Value = api.graphql(token, &query, None).await;
            if reply["data"]["quote"]["version"].as_u64() >= Some(version) {
                break;
            }
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        lags.push(replied.elapsed().as_secs_f64() * 1000.0);
    }
    lags.sort_by(f64::total_cmp);
    (percentile(&lags, 0.50), percentile(&lags, 0.99))
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
