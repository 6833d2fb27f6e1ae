//! Rebuild speed against the real stack (`cargo bench --bench rebuild`).
//!
//! Seeds a fresh database with at least EVENTS events (`support/seed.rs`: quotes with their
//! lines, accounts with their changes), then runs the real `b2b projections rebuild <name>` for every read model and prints what it
//! reports: events of the store replayed per second while the old tables kept serving, and how
//! long the swap transaction took.
#[path = "../tests/api/helpers.rs"]
mod helpers;

#[path = "support/seed.rs"]
mod seed;

use helpers::TestStack;
use serde_json::Value;

/// Events seeded (at least).
const EVENTS: i64 = 1_000_000;

#[tokio::main]
async fn main() {
    let stack = TestStack::new().await;
    let stored = seed::fill(&stack, "bench", EVENTS).await;
    println!("b2b rebuild benchmark: {stored} events");
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
