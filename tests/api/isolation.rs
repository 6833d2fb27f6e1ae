use reqwest::StatusCode;
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{open_account, problem, Api, TestStack};

#[tokio::test]
async fn a_second_tenant_sees_nothing_of_the_first_and_gets_404_for_its_ids() {
    let stack = TestStack::new().await;
    let first = stack.create_tenant("first").await;
    let second = stack.create_tenant("second").await;
    let server = stack.spawn(&["serve"]).await;
    let api = Api::new(&server);
    let first_token = api.login(&first).await;
    let second_token = api.login(&second).await;
    let id = Uuid::new_v4();
    let version = api.ok(&first_token, id, open_account("Hooli")).await;
    // Wait until the first tenant can see it, so "nothing" below is not just lag.
    let seen = api
        .graphql(
            &first_token,
            &format!(r#"{{ account(id: "{id}") {{ id }} }}"#),
            Some((id, version)),
        )
        .await;
    assert_eq!(seen["data"]["account"]["id"], json!(id.to_string()));

    let list = api
        .graphql(
            &second_token,
            "{ accounts(first: 50) { totalCount edges { node { id } } } }",
            None,
        )
        .await;
    assert_eq!(list["data"]["accounts"]["totalCount"], 0, "{list}");
    let one = api
        .graphql(
            &second_token,
            &format!(r#"{{ account(id: "{id}") {{ id }} }}"#),
            None,
        )
        .await;
    assert!(one["data"]["account"].is_null(), "{one}");

    let events_before = stack.account_event_count().await;
    for body in [
        json!({"type": "ChangeTier", "tier": "Standard"}),
        open_account("Hijack"),
    ] {
        let response = api
            .command(&second_token, "accounts", id)
            .json(&body)
            .send()
            .await
            .unwrap();
        let foreign = problem(response, StatusCode::NOT_FOUND).await;
        // Word for word what an id that exists nowhere gets: nothing tells the two apart.
        let nowhere = api
            .command(&second_token, "accounts", Uuid::new_v4())
            .json(&json!({"type": "ChangeTier", "tier": "Standard"}))
            .send()
            .await
            .unwrap();
        let nowhere = problem(nowhere, StatusCode::NOT_FOUND).await;
        assert_eq!(
            foreign["detail"], nowhere["detail"],
            "{foreign} / {nowhere}"
        );
        assert_eq!(foreign["type"], nowhere["type"]);
    }
    assert_eq!(stack.account_event_count().await, events_before);
}
