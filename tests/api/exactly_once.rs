//! One transaction per command: a command-API process killed between the commit and its reply
//! (or before the append), and several processes with their own caches writing to the same
//! aggregates, still apply every acknowledged command exactly once.
use std::collections::HashMap;

use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{eventually, open_account, Api, Process, TestStack};

/// A command API whose requests may name a crash point (`X-Test-Fault`).
async fn crashable(stack: &TestStack) -> Process {
    stack
        .spawn_with_env(&["command-api"], &[("B2B_TEST_FAULTS", "1")])
        .await
}

async fn names_stored(stack: &TestStack, id: Uuid) -> Vec<(i64, String)> {
    sqlx::query_as(
        "select sequence, coalesce(payload -> 'AccountDetailsUpdated' ->> 'name', \
                payload -> 'AccountOpened' ->> 'name') \
           from events where aggregate_id = $1 order by sequence",
    )
    .bind(id.to_string())
    .fetch_all(&stack.db)
    .await
    .unwrap()
}

/// An account renamed under key `rename-1` by a request that crashes its process at `point`,
/// and a fresh process to retry at.
struct Crashed {
    stack: TestStack,
    token: String,
    id: Uuid,
    retry_at: Api,
    _restarted: Process,
}

const RENAME: &str = "Renamed once";

impl Crashed {
    async fn at(slug: &str, point: &str) -> Self {
        let stack = TestStack::new().await;
        let tenant = stack.create_tenant(slug).await;
        let server = crashable(&stack).await;
        let api = Api::new(&server);
        let token = api.login(&tenant).await;
        let id = Uuid::new_v4();
        api.ok(&token, id, open_account("Before")).await;
        let crashed = api
            .command(&token, "accounts", id)
            .header("Idempotency-Key", "rename-1")
            .header("X-Test-Fault", point)
            .json(&rename())
            .send()
            .await;
        assert!(crashed.is_err(), "the process died at {point}");
        let restarted = crashable(&stack).await;
        Self {
            retry_at: Api::new(&restarted),
            _restarted: restarted,
            stack,
            token,
            id,
        }
    }

    async fn retry(&self) -> reqwest::Response {
        self.retry_at
            .command(&self.token, "accounts", self.id)
            .header("Idempotency-Key", "rename-1")
            .json(&rename())
            .send()
            .await
            .unwrap()
    }

    /// The stream holds the rename exactly once, after the opening.
    async fn assert_renamed_once(&self) {
        assert_eq!(
            names_stored(&self.stack, self.id).await,
            vec![(1, "Before".to_owned()), (2, RENAME.to_owned())]
        );
    }
}

fn rename() -> Value {
    json!({"type": "UpdateAccountDetails", "name": RENAME})
}

#[tokio::test]
async fn a_process_killed_after_the_commit_replays_the_stored_reply_to_the_retry() {
    let crashed = Crashed::at("crash-after", "after-append").await;
    // The events committed although no reply left the process.
    assert_eq!(names_stored(&crashed.stack, crashed.id).await.len(), 2);

    let retry = crashed.retry().await;
    assert_eq!(retry.status(), StatusCode::OK);
    assert_eq!(retry.headers()["etag"], "\"2\"");
    let reply: Value = retry.json().await.unwrap();
    assert_eq!(reply, json!({"id": crashed.id, "version": 2}));
    crashed.assert_renamed_once().await;
}

#[tokio::test]
async fn a_process_killed_before_the_append_leaves_the_key_free_for_one_run() {
    let crashed = Crashed::at("crash-before", "before-append").await;
    assert_eq!(names_stored(&crashed.stack, crashed.id).await.len(), 1);
    let receipts: i64 = sqlx::query_scalar("select count(*) from idempotency_keys")
        .fetch_one(&crashed.stack.db)
        .await
        .unwrap();
    assert_eq!(receipts, 0, "nothing holds the key");

    for _ in 0..2 {
        let retry = crashed.retry().await;
        assert_eq!(retry.status(), StatusCode::OK);
        let reply: Value = retry.json().await.unwrap();
        assert_eq!(reply, json!({"id": crashed.id, "version": 2}));
    }
    crashed.assert_renamed_once().await;
}

#[tokio::test]
async fn fault_points_are_refused_outside_app_env_test() {
    let stack = TestStack::new().await;
    let output = stack
        .command(&["command-api"])
        .env("APP_ENV", "local")
        .env("B2B_TEST_FAULTS", "1")
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("B2B_TEST_FAULTS"), "{stderr}");
}

#[tokio::test]
async fn concurrent_twins_with_one_key_commit_once_and_answer_alike() {
    let stack = TestStack::new().await;
    let tenant = stack.create_tenant("twins").await;
    let server = stack.spawn(&["command-api"]).await;
    let api = Api::new(&server);
    let token = api.login(&tenant).await;
    let id = Uuid::new_v4();
    api.ok(&token, id, open_account("Twins")).await;
    let rename = json!({"type": "UpdateAccountDetails", "name": "Twin"});
    let replies: Vec<Value> = futures::stream::iter(0..8)
        .map(|_| async {
            let response = api
                .command(&token, "accounts", id)
                .header("Idempotency-Key", "same-key")
                .json(&rename)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            response.json::<Value>().await.unwrap()
        })
        .buffer_unordered(8)
        .collect()
        .await;
    assert!(
        replies
            .iter()
            .all(|r| *r == json!({"id": id, "version": 2})),
        "{replies:?}"
    );
    assert_eq!(names_stored(&stack, id).await.len(), 2);
}

/// Three processes, each with its own stream cache, write to the same 20 accounts at once: no
/// acknowledged command is lost or overwritten, and every stream stays contiguous.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_with_caches_lose_no_update() {
    const ACCOUNTS: usize = 20;
    const COMMANDS: usize = 300;
    let stack = TestStack::new().await;
    let tenant = stack.create_tenant("three").await;
    let mut servers = Vec::new();
    for _ in 0..3 {
        servers.push(stack.spawn(&["command-api"]).await);
    }
    let apis: Vec<Api> = servers.iter().map(Api::new).collect();
    let token = apis[0].login(&tenant).await;
    let ids: Vec<Uuid> = (0..ACCOUNTS).map(|_| Uuid::new_v4()).collect();
    for (n, id) in ids.iter().enumerate() {
        apis[n % 3]
            .ok(&token, *id, open_account(&format!("open-{n}")))
            .await;
    }
    // Every process caches every account before the race starts.
    for api in &apis {
        for id in &ids {
            let warm =
                json!({"type": "UpdateAccountDetails", "name": format!("warm-{}", Uuid::new_v4())});
            api.ok(&token, *id, warm).await;
        }
    }
    let acknowledged: Vec<(Uuid, u64, String)> = futures::stream::iter(0..COMMANDS)
        .map(|n| {
            let (api, token, id) = (&apis[n % 3], &token, ids[n % ACCOUNTS]);
            async move {
                let name = format!("race-{n}");
                let body = json!({"type": "UpdateAccountDetails", "name": name});
                let version = api.ok(token, id, body).await;
                (id, version, name)
            }
        })
        .buffer_unordered(24)
        .collect()
        .await;

    let mut versions_seen = HashMap::new();
    for id in &ids {
        let stored = names_stored(&stack, *id).await;
        let sequences: Vec<i64> = stored.iter().map(|(s, _)| *s).collect();
        let contiguous: Vec<i64> = (1..=stored.len() as i64).collect();
        assert_eq!(sequences, contiguous, "stream {id} has a gap");
        versions_seen.insert(*id, stored);
    }
    for (id, version, name) in &acknowledged {
        let stored = &versions_seen[id];
        assert_eq!(
            stored[*version as usize - 1],
            (*version as i64, name.clone()),
            "the reply's version holds the command's own event"
        );
        assert_eq!(stored.iter().filter(|(_, n)| n == name).count(), 1);
    }
    let total: usize = versions_seen.values().map(Vec::len).sum();
    assert_eq!(total, ACCOUNTS * 4 + COMMANDS);
}

/// An event whose position was taken by a transaction that commits after a later position's
/// (a gap the relay has already passed) is still published, once: the relay keeps re-reading
/// its open gaps by position until the snapshot shows their writers have ended.
#[tokio::test]
async fn an_event_committed_after_a_later_position_is_still_published() {
    let stack = TestStack::new().await;
    let tenant = stack.create_tenant("gaps").await;
    let server = stack.spawn(&["serve"]).await;
    let api = Api::new(&server);
    let token = api.login(&tenant).await;
    let first = Uuid::new_v4();
    api.ok(&token, first, open_account("First")).await;

    // A slow writer: a copy of the first account's opening under a new id, uncommitted.
    let late = Uuid::new_v4();
    let mut slow = stack.db.begin().await.unwrap();
    sqlx::query(
        "insert into events (aggregate_type, aggregate_id, sequence, event_type, event_version, \
                             payload, metadata) \
         select aggregate_type, $2, 1, event_type, event_version, \
                json_build_object('AccountOpened', (payload -> 'AccountOpened')::jsonb \
                                  || jsonb_build_object('name', 'Late')), metadata \
           from events where aggregate_id = $1 and sequence = 1",
    )
    .bind(first.to_string())
    .bind(late.to_string())
    .execute(&mut *slow)
    .await
    .unwrap();

    // A later position commits first and is projected: the relay has passed the gap.
    let after = Uuid::new_v4();
    api.ok(&token, after, open_account("After")).await;
    let names = |stack: &TestStack| {
        let db = stack.db.clone();
        async move {
            let rows: Vec<String> =
                sqlx::query_scalar("select name from read.accounts order by name")
                    .fetch_all(&db)
                    .await
                    .unwrap();
            rows
        }
    };
    let named = |name: &'static str| {
        let names = names(&stack);
        async move { names.await.iter().any(|n| n == name).then_some(()) }
    };
    eventually("the later account projected", || named("After")).await;
    assert!(!names(&stack).await.contains(&"Late".to_string()));

    slow.commit().await.unwrap();
    eventually("the late account projected", || named("Late")).await;
    stack
        .wait_for_relay(std::time::Duration::from_secs(10))
        .await;
    assert_eq!(names(&stack).await, ["After", "First", "Late"]);
}
