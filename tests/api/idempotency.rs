use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{open_account, problem, Api, TestStack};

#[tokio::test]
async fn a_repeated_idempotency_key_replays_the_first_response_and_appends_nothing() {
    let stack = TestStack::new().await;
    let tenant = stack.create_tenant("retry").await;
    let server = stack.spawn(&["command-api"]).await;
    let api = Api::new(&server);
    let token = api.login(&tenant).await;
    let id = Uuid::new_v4();
    let send = |key: &'static str, body: Value| {
        api.command(&token, "accounts", id)
            .header("Idempotency-Key", key)
            .json(&body)
            .send()
    };

    let first = send("open-1", open_account("Wonka")).await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let first: Value = first.json().await.unwrap();
    let again = send("open-1", open_account("Wonka")).await.unwrap();
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(again.json::<Value>().await.unwrap(), first);
    assert_eq!(stack.account_event_count().await, 1);

    let other_body = send("open-1", open_account("Slugworth")).await.unwrap();
    let body = problem(other_body, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(
        body["type"],
        "/problems/rule-violated/idempotency_key_reused"
    );
    assert_eq!(stack.account_event_count().await, 1);

    let tier = json!({"type": "ChangeTier", "tier": "Standard"});
    let changed: Value = send("tier-1", tier.clone())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(changed["version"], 2);
    let replayed: Value = send("tier-1", tier).await.unwrap().json().await.unwrap();
    assert_eq!(replayed, changed);
    assert_eq!(stack.account_event_count().await, 2);
}

#[tokio::test]
async fn a_failed_command_does_not_burn_its_idempotency_key() {
    let stack = TestStack::new().await;
    let tenant = stack.create_tenant("fixit").await;
    let server = stack.spawn(&["command-api"]).await;
    let api = Api::new(&server);
    let token = api.login(&tenant).await;
    let id = Uuid::new_v4();
    let mut bad = open_account("Oompa");
    bad["currency"] = json!("euros");
    let send = |body: Value| {
        api.command(&token, "accounts", id)
            .header("Idempotency-Key", "open-once")
            .json(&body)
            .send()
    };
    let refused = problem(send(bad).await.unwrap(), StatusCode::BAD_REQUEST).await;
    assert_eq!(refused["errors"][0]["field"], "currency", "{refused}");
    assert_eq!(stack.account_event_count().await, 0);
    let fixed = send(open_account("Oompa")).await.unwrap();
    assert_eq!(fixed.status(), StatusCode::OK);
    assert_eq!(stack.account_event_count().await, 1);
}

/// Receipts past their 24 hours are swept away by the command API on its own (keys that are
/// never retried must not pile up); younger ones stay and still replay.
#[tokio::test]
async fn receipts_older_than_a_day_are_swept_and_younger_ones_kept() {
    let stack = TestStack::new().await;
    let tenant = stack.create_tenant("sweep").await;
    let server = stack
        .spawn_with_env(&["command-api"], &[("IDEMPOTENCY_SWEEP_SECONDS", "1")])
        .await;
    let api = Api::new(&server);
    let token = api.login(&tenant).await;
    let send = |key: &'static str, id: Uuid| {
        api.command(&token, "accounts", id)
            .header("Idempotency-Key", key)
            .json(&open_account("Swept"))
            .send()
    };
    let (old, young) = (Uuid::new_v4(), Uuid::new_v4());
    let mut first_replies = Vec::new();
    for (key, id) in [("old", old), ("young", young)] {
        let reply = send(key, id).await.unwrap();
        assert_eq!(reply.status(), StatusCode::OK);
        first_replies.push(reply.json::<Value>().await.unwrap());
    }
    sqlx::query(
        "update idempotency_keys set created_at = now() - interval '25 hours' where key = 'old'",
    )
    .execute(&stack.db)
    .await
    .unwrap();

    let keys = || async {
        sqlx::query_scalar::<_, String>("select key from idempotency_keys order by key")
            .fetch_all(&stack.db)
            .await
            .unwrap()
    };
    crate::helpers::eventually("the old receipt to be swept", || async {
        (keys().await == ["young"]).then_some(())
    })
    .await;
    let replayed = send("young", young).await.unwrap();
    assert_eq!(replayed.status(), StatusCode::OK);
    assert_eq!(replayed.json::<Value>().await.unwrap(), first_replies[1]);
    assert_eq!(
        stack.account_event_count().await,
        2,
        "the replay appended nothing"
    );
}
