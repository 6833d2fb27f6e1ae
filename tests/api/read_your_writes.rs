//! `X-Await-Version` waits on the projectors' announcements, not by polling, and caps how many
//! requests may wait at once.
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{open_account, problem, Api, TestStack};

const VERSION_QUERY: &str = "{ me { userId } }";

async fn awaiting(api: &Api, token: &str, id: Uuid, version: u64) -> reqwest::Response {
    api.http
        .post(format!("{}/graphql", api.base_url))
        .bearer_auth(token)
        .header("X-Await-Version", format!("{id}@{version}"))
        .json(&json!({ "query": VERSION_QUERY }))
        .send()
        .await
        .unwrap()
}

/// Checkpoint reads made by this database so far (pg_stat_statements).
async fn checkpoint_reads(stack: &TestStack) -> i64 {
    sqlx::query_scalar(
        "select coalesce(sum(calls), 0)::bigint from pg_stat_statements s \
           join pg_database d on d.oid = s.dbid \
          where d.datname = current_database() and s.query like '%from projection_checkpoints%' \
            and s.query like '%last_sequence >=%'",
    )
    .fetch_one(&stack.db)
    .await
    .unwrap()
}

#[tokio::test]
async fn waiting_readers_are_woken_by_the_projector_not_by_polling() {
    let stack = TestStack::new().await;
    sqlx::query("create extension if not exists pg_stat_statements")
        .execute(&stack.db)
        .await
        .unwrap();
    let tenant = stack.create_tenant("ryw").await;
    let server = stack
        .spawn_with_env(&["serve"], &[("AWAIT_VERSION_TIMEOUT_MS", "2000")])
        .await;
    let api = Api::new(&server);
    let token = api.login(&tenant).await;
    let id = Uuid::new_v4();
    let version = api.ok(&token, id, open_account("Waited")).await;

    // The write is read back once projected.
    let read = awaiting(&api, &token, id, version).await;
    assert_eq!(read.status(), StatusCode::OK);
    let body: Value = read.json().await.unwrap();
    assert!(body["errors"].is_null(), "{body}");

    // Twenty readers wait two seconds for a version that never comes: polling every 20 ms
    // would read the checkpoints about 2,000 times.
    let before = checkpoint_reads(&stack).await;
    let stale: Vec<Value> = futures::stream::iter(0..20)
        .map(|_| async {
            let response = awaiting(&api, &token, id, version + 10).await;
            assert_eq!(response.status(), StatusCode::OK);
            response.json::<Value>().await.unwrap()
        })
        .buffer_unordered(20)
        .collect()
        .await;
    assert!(
        stale
            .iter()
            .all(|b| b["errors"][0]["extensions"]["code"] == "STALE_READ"),
        "{stale:?}"
    );
    let reads = checkpoint_reads(&stack).await - before;
    assert!(
        reads <= 400,
        "{reads} checkpoint reads for 20 waiters over 2 s"
    );
}

#[tokio::test]
async fn readers_beyond_the_waiting_cap_are_refused_with_503_and_retry_after() {
    let stack = TestStack::new().await;
    let tenant = stack.create_tenant("ryw-cap").await;
    let server = stack
        .spawn_with_env(
            &["serve"],
            &[
                ("AWAIT_VERSION_TIMEOUT_MS", "1500"),
                ("AWAIT_VERSION_MAX_WAITERS", "3"),
            ],
        )
        .await;
    let api = Api::new(&server);
    let token = api.login(&tenant).await;
    let id = Uuid::new_v4();
    let version = api.ok(&token, id, open_account("Capped")).await;

    let responses: Vec<reqwest::Response> = futures::stream::iter(0..12)
        .map(|_| awaiting(&api, &token, id, version + 10))
        .buffer_unordered(12)
        .collect()
        .await;
    let mut refused = 0;
    for response in responses {
        if response.status() == StatusCode::SERVICE_UNAVAILABLE {
            assert_eq!(response.headers()["retry-after"], "1");
            let body = problem(response, StatusCode::SERVICE_UNAVAILABLE).await;
            assert_eq!(body["type"], "/problems/busy");
            refused += 1;
        } else {
            assert_eq!(response.status(), StatusCode::OK);
        }
    }
    assert!(refused >= 9 - 3, "{refused} of 12 refused with 3 slots");
}
