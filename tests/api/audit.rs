//! Auditors' command line: `b2b events export` and `b2b audit verify`, on the real binary.
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{open_account, Api, Tenant, TestStack};

pub(crate) async fn stack_with_history() -> (TestStack, Vec<Uuid>) {
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

/// A key that signed none of the tests' checkpoints (RFC 8410's example).
pub(crate) const OTHER_PUBLIC_KEY: &str = "Gb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=";

/// The tenant [`stack_with_history`] writes to (signing in needs only its slug and e-mail).
pub(crate) fn ledger() -> Tenant {
    Tenant {
        slug: "ledger".into(),
        email: "admin@ledger.test".into(),
        id: Uuid::nil(),
    }
}

/// As a superuser with triggers disabled: what an attacker with database access could do.
pub(crate) async fn tamper(stack: &TestStack, statement: &str) {
    tamper_all(stack, &[statement.to_owned()]).await;
}

/// Several changes in one transaction, each to at least one row.
pub(crate) async fn tamper_all(stack: &TestStack, statements: &[String]) {
    let mut tx = stack.db.begin().await.unwrap();
    sqlx::query("set local session_replication_role = replica")
        .execute(&mut *tx)
        .await
        .unwrap();
    for statement in statements {
        let changed = sqlx::query(statement).execute(&mut *tx).await.unwrap();
        assert!(changed.rows_affected() >= 1, "{statement}");
    }
    tx.commit().await.unwrap();
}

/// The statements that recompute a stream's hashes from `sequence` on, one event at a time, with
/// the database's own `event_hash`: a rewrite that leaves every chain intact.
pub(crate) async fn rehash_from(stack: &TestStack, id: Uuid, sequence: i64) -> Vec<String> {
    let last: i64 = sqlx::query_scalar("select max(sequence) from events where aggregate_id = $1")
        .bind(id.to_string())
        .fetch_one(&stack.db)
        .await
        .unwrap();
    (sequence..=last)
        .map(|n| {
            format!(
                "update events e set hash = event_hash(p.hash, e) from events p \
                  where p.aggregate_type = e.aggregate_type and p.aggregate_id = e.aggregate_id \
                    and p.sequence = e.sequence - 1 and e.aggregate_id = '{id}' and e.sequence = {n}"
            )
        })
        .collect()
}

/// Events whose stored hash is not what `event_hash` computes over their stored predecessor.
pub(crate) async fn chain_breaks(stack: &TestStack) -> i64 {
    sqlx::query_scalar(
        "select count(*) from events e left join events p \
           on p.aggregate_type = e.aggregate_type and p.aggregate_id = e.aggregate_id \
          and p.sequence = e.sequence - 1 \
         where e.hash is distinct from event_hash(p.hash, e)",
    )
    .fetch_one(&stack.db)
    .await
    .unwrap()
}

/// [`stack_with_history`] with a signed checkpoint of every tenant.
pub(crate) async fn signed_history() -> (TestStack, Vec<Uuid>) {
    let (stack, ids) = stack_with_history().await;
    let (ok, stdout, stderr) = stack.b2b(&["audit", "checkpoint"]).await;
    assert!(ok, "{stdout}{stderr}");
    assert!(
        stdout.contains("tenant ledger: signed checkpoint 1")
            && stdout.contains("10 events in 4 streams"),
        "{stdout}"
    );
    (stack, ids)
}

/// `b2b audit verify` must fail: its stderr.
async fn verify_fails(stack: &TestStack) -> String {
    let (ok, stdout, stderr) = stack.b2b(&["audit", "verify"]).await;
    assert!(!ok, "verify passed: {stdout}");
    stderr
}

async fn position(stack: &TestStack, id: Uuid, sequence: i64) -> i64 {
    sqlx::query_scalar(
        "select global_position from events where aggregate_id = $1 and sequence = $2",
    )
    .bind(id.to_string())
    .bind(sequence)
    .fetch_one(&stack.db)
    .await
    .unwrap()
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

#[tokio::test]
async fn verify_checks_each_tenants_latest_signed_checkpoint() {
    let (stack, _) = signed_history().await;
    let (ok, stdout, stderr) = stack.b2b(&["audit", "verify"]).await;
    assert!(ok, "{stdout}{stderr}");
    assert!(
        stdout.contains("ok: 12 events, every stream's hash chain intact; 12 covered"),
        "{stdout}"
    );
    assert!(
        stdout.contains("tenant ledger: checkpoint 1 (")
            && stdout.contains("10 events in 4 streams")
            && stdout.contains("tenant other: checkpoint 1 ("),
        "{stdout}"
    );
    let (ok, stdout, _) = stack
        .b2b(&["audit", "checkpoint", "--tenant", "ledger"])
        .await;
    assert!(ok);
    assert!(
        stdout.contains("tenant ledger: checkpoint 1 is current"),
        "{stdout}"
    );
    assert_eq!(chain_breaks(&stack).await, 0);
}

#[tokio::test]
async fn verify_names_a_removed_last_event() {
    let (stack, ids) = signed_history().await;
    tamper(
        &stack,
        &format!(
            "delete from events where aggregate_id = '{}' and sequence = 3",
            ids[0]
        ),
    )
    .await;
    // The chain that is left is intact: only the signed head shows what is gone.
    assert_eq!(chain_breaks(&stack).await, 0);
    let stderr = verify_fails(&stack).await;
    assert!(
        stderr.contains(&format!(
            "event Account/{}#3 is missing: the signed checkpoint covers the stream up to #3",
            ids[0]
        )),
        "{stderr}"
    );
}

#[tokio::test]
async fn verify_names_a_removed_stream() {
    let (stack, ids) = signed_history().await;
    tamper(
        &stack,
        &format!("delete from events where aggregate_id = '{}'", ids[1]),
    )
    .await;
    let stderr = verify_fails(&stack).await;
    assert!(
        stderr.contains(&format!("event Account/{}#1 is missing", ids[1])),
        "{stderr}"
    );
}

#[tokio::test]
async fn verify_names_a_backdated_event() {
    let (stack, ids) = stack_with_history().await;
    tamper(
        &stack,
        &format!(
            "update events set recorded_at = recorded_at - interval '400 days' \
              where aggregate_id = '{}' and sequence = 2",
            ids[1]
        ),
    )
    .await;
    let stderr = verify_fails(&stack).await;
    let at = position(&stack, ids[1], 2).await;
    assert!(
        stderr.contains(&format!(
            "event Account/{}#2 (global position {at}) was altered",
            ids[1]
        )),
        "{stderr}"
    );
}

#[tokio::test]
async fn verify_names_events_moved_in_commit_order() {
    let (stack, ids) = stack_with_history().await;
    let (first, second) = (
        position(&stack, ids[0], 2).await,
        position(&stack, ids[1], 2).await,
    );
    tamper_all(
        &stack,
        &[
            format!("update events set global_position = -1 where global_position = {first}"),
            format!("update events set global_position = {first} where global_position = {second}"),
            format!("update events set global_position = {second} where global_position = -1"),
        ],
    )
    .await;
    let stderr = verify_fails(&stack).await;
    assert!(
        stderr.contains(&format!(
            "event Account/{}#2 (global position {first}) was altered",
            ids[1]
        )) && stderr.contains("(1 more problems found)"),
        "{stderr}"
    );
}

#[tokio::test]
async fn verify_names_events_swapped_in_their_stream() {
    let (stack, ids) = stack_with_history().await;
    let id = ids[2];
    let moved = position(&stack, id, 2).await;
    tamper_all(
        &stack,
        &[
            format!(
                "update events set sequence = 1000 where aggregate_id = '{id}' and sequence = 2"
            ),
            format!("update events set sequence = 2 where aggregate_id = '{id}' and sequence = 3"),
            format!(
                "update events set sequence = 3 where aggregate_id = '{id}' and sequence = 1000"
            ),
        ],
    )
    .await;
    let stderr = verify_fails(&stack).await;
    assert!(
        stderr.contains(&format!(
            "event Account/{id}#3 (global position {moved}) was altered"
        )),
        "{stderr}"
    );
}

/// Someone with the schema owner's rights rewrites history and recomputes every hash after it
/// with the database's own `event_hash`: each chain is intact again, but the signed heads are
/// not what they were, and the next checkpoint refuses to sign on from the rewritten stream.
#[tokio::test]
async fn verify_names_a_stream_rewritten_and_rehashed_after_a_checkpoint() {
    for rewrite in [
        "set payload = '{\"AccountTierChanged\": {\"to\": \"Standard\", \"from\": \"Gold\"}}'",
        "set recorded_at = recorded_at - interval '400 days'",
    ] {
        let (stack, ids) = signed_history().await;
        let id = ids[0];
        let mut statements = vec![format!(
            "update events {rewrite} where aggregate_id = '{id}' and sequence = 2"
        )];
        statements.extend(rehash_from(&stack, id, 2).await);
        tamper_all(&stack, &statements).await;
        assert_eq!(chain_breaks(&stack).await, 0, "{rewrite}");

        let stderr = verify_fails(&stack).await;
        let head = position(&stack, id, 3).await;
        assert!(
            stderr.contains(&format!(
                "event Account/{id}#3 (global position {head}) does not match the signed \
                 checkpoint: the stream was rewritten"
            )),
            "{rewrite}: {stderr}"
        );

        let server = stack.spawn(&["command-api"]).await;
        let api = Api::new(&server);
        let token = api.login(&ledger()).await;
        api.ok(
            &token,
            id,
            json!({"type": "SetApiQuota", "requests_per_minute": 90}),
        )
        .await;
        let (ok, _, stderr) = stack
            .b2b(&["audit", "checkpoint", "--tenant", "ledger"])
            .await;
        assert!(!ok, "{rewrite}: signed on from a rewritten stream");
        assert!(
            stderr.contains(&format!("refused to sign: event Account/{id}#4"))
                && stderr.contains("does not chain to its predecessor's hash"),
            "{rewrite}: {stderr}"
        );
    }
}

#[tokio::test]
async fn verify_refuses_a_checkpoint_whose_stored_heads_were_changed() {
    let (stack, ids) = signed_history().await;
    tamper(
        &stack,
        &format!(
            "update audit_checkpoint_heads set sequence = 2 where aggregate_id = '{}'",
            ids[0]
        ),
    )
    .await;
    let stderr = verify_fails(&stack).await;
    assert!(
        stderr
            .contains("tenant ledger: checkpoint 1's stream heads no longer match what it signed"),
        "{stderr}"
    );
}

#[tokio::test]
async fn verify_refuses_checkpoints_signed_with_another_key() {
    let (stack, _) = signed_history().await;
    let (ok, _, stderr) = stack
        .b2b(&["audit", "verify", "--public-key", OTHER_PUBLIC_KEY])
        .await;
    assert!(!ok);
    assert!(
        stderr.contains("checkpoint 1 is signed by another key"),
        "{stderr}"
    );
}
