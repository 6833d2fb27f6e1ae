//! Auditors' command line: `b2b events export` and `b2b audit verify`, on the real binary.
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{open_account, Api, TestStack};

async fn stack_with_history() -> (TestStack, Vec<Uuid>) {
    let stack = TestStack::new().await;
    let first = stack.create_tenant("ledger").await;
    let second = stack.create_tenant("other").await;
    let server = stack.spawn(&["command-api"]).await;
    let api = Api::new(&server);
    let (token, other_token) = (api.login(&first).await, api.login(&second).await);
    let ids: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
    for id in &ids {
        api.ok(&token, *id, open_account("Acme")).await;
        api.ok(
            &token,
            *id,
            json!({"type": "ChangeTier", "tier": "Enterprise"}),
        )
        .await;
        api.ok(
            &token,
            *id,
            json!({"type": "SetApiQuota", "requests_per_minute": 60}),
        )
        .await;
    }
    api.ok(&other_token, Uuid::new_v4(), open_account("Elsewhere"))
        .await;
    (stack, ids)
}

/// As a superuser with triggers disabled: what an attacker with database access could do.
async fn tamper(stack: &TestStack, statement: &str) {
    let mut tx = stack.db.begin().await.unwrap();
    sqlx::query("set local session_replication_role = replica")
        .execute(&mut *tx)
        .await
        .unwrap();
    let changed = sqlx::query(statement).execute(&mut *tx).await.unwrap();
    assert_eq!(changed.rows_affected(), 1, "{statement}");
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn export_writes_one_tenants_events_as_ndjson_in_commit_order() {
    let (stack, ids) = stack_with_history().await;
    let (ok, stdout, stderr) = stack
        .b2b(&[
            "events",
            "export",
            "--tenant",
            "ledger",
            "--aggregate-type",
            "Account",
        ])
        .await;
    assert!(ok, "{stderr}");
    let events: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), 9);
    let positions: Vec<i64> = events
        .iter()
        .map(|e| e["global_position"].as_i64().unwrap())
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
    assert!(events.iter().all(|e| ids
        .iter()
        .any(|id| e["aggregate_id"] == json!(id.to_string()))));
    assert_eq!(events[0]["event_type"], "AccountOpened");

    let (_, everything, _) = stack.b2b(&["events", "export", "--tenant", "ledger"]).await;
    assert_eq!(
        everything.lines().count(),
        10,
        "the admin's UserRegistered as well"
    );
    let (_, future, _) = stack
        .b2b(&[
            "events",
            "export",
            "--tenant",
            "ledger",
            "--from",
            "2999-01-01T00:00:00Z",
        ])
        .await;
    assert_eq!(future.lines().count(), 0);
}

#[tokio::test]
async fn verify_passes_on_an_untouched_store() {
    let (stack, _) = stack_with_history().await;
    let (ok, stdout, stderr) = stack.b2b(&["audit", "verify"]).await;
    assert!(ok, "{stdout}{stderr}");
    assert!(stdout.contains("ok: 12 events"), "{stdout}");
}

#[tokio::test]
async fn verify_names_an_altered_event() {
    let (stack, ids) = stack_with_history().await;
    tamper(
        &stack,
        &format!(
            "update events set payload = '{{\"AccountTierChanged\":{{\"from\":\"Gold\",\"to\":\"Standard\"}}}}' \
             where aggregate_id = '{}' and sequence = 2",
            ids[1]
        ),
    )
    .await;
    let (ok, stdout, stderr) = stack.b2b(&["audit", "verify", "--tenant", "ledger"]).await;
    assert!(!ok, "{stdout}");
    assert!(
        stderr.contains(&format!("Account/{}#2", ids[1])) && stderr.contains("altered"),
        "{stderr}"
    );
}

#[tokio::test]
async fn verify_names_a_removed_event() {
    let (stack, ids) = stack_with_history().await;
    tamper(
        &stack,
        &format!(
            "delete from events where aggregate_id = '{}' and sequence = 2",
            ids[2]
        ),
    )
    .await;
    let (ok, _, stderr) = stack.b2b(&["audit", "verify"]).await;
    assert!(!ok);
    assert!(
        stderr.contains(&format!("Account/{}#2 is missing", ids[2])),
        "{stderr}"
    );
}
