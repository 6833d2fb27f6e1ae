//! Careless or hostile input: it gets a clear 4xx, changes nothing, and the server keeps
//! answering; every response carries the security headers; CORS only for configured origins.
use reqwest::StatusCode;
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{open_account, problem, Api, TestStack};

const APP_ORIGIN: &str = "https://app.example.test";

#[tokio::test]
async fn malformed_bodies_are_refused_without_effect_and_the_server_keeps_answering() {
    let stack = TestStack::new().await;
    let tenant = stack.create_tenant("hostile").await;
    let server = stack.spawn(&["command-api"]).await;
    let api = Api::new(&server);
    let token = api.login(&tenant).await;
    let id = Uuid::new_v4();
    api.ok(&token, id, open_account("Target")).await;
    let before = stack.account_event_count().await;

    let deeply_nested = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let huge_number = r#"{"type":"SetApiQuota","requests_per_minute":1e999999}"#.to_owned();
    let overflow =
        r#"{"type":"SetApiQuota","requests_per_minute":99999999999999999999}"#.to_owned();
    let bodies: Vec<Vec<u8>> = vec![
        deeply_nested.into_bytes(),
        vec![b'{', 0xff, 0xfe, b'}'],
        huge_number.into_bytes(),
        overflow.into_bytes(),
        br#"{"type":"ChangeTier","tier":"Gold","tier":"Standard","__proto__":{}}"#.to_vec(),
    ];
    for body in bodies {
        let response = api
            .command(&token, "accounts", id)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        problem(response, StatusCode::BAD_REQUEST).await;
    }
    let not_uuid = api
        .http
        .post(format!("{}/api/v1/accounts/not-a-uuid", api.base_url))
        .bearer_auth(&token)
        .json(&json!({"type": "ChangeTier", "tier": "Gold"}))
        .send()
        .await
        .unwrap();
    problem(not_uuid, StatusCode::NOT_FOUND).await;
    let live = api
        .http
        .get(format!("{}/health/live", api.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), StatusCode::OK);
    assert_eq!(stack.account_event_count().await, before);
    api.ok(
        &token,
        id,
        json!({"type": "ChangeTier", "tier": "Standard"}),
    )
    .await;
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let stack = TestStack::new().await;
    let server = stack.spawn(&["serve"]).await;
    let api = Api::new(&server);
    let responses = [
        api.http
            .get(format!("{}/health/live", api.base_url))
            .send()
            .await
            .unwrap(),
        api.http
            .post(format!(
                "{}/api/v1/accounts/{}",
                api.base_url,
                Uuid::new_v4()
            ))
            .send()
            .await
            .unwrap(),
        api.http
            .post(format!("{}/graphql", api.base_url))
            .send()
            .await
            .unwrap(),
    ];
    for response in responses {
        let headers = response.headers();
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers["x-frame-options"], "DENY");
        assert_eq!(headers["referrer-policy"], "no-referrer");
        assert_eq!(headers["cache-control"], "no-store");
    }
}

#[tokio::test]
async fn browsers_may_call_only_from_configured_origins() {
    let stack = TestStack::new().await;
    let server = stack
        .spawn_with_env(&["serve"], &[("CORS_ALLOWED_ORIGINS", APP_ORIGIN)])
        .await;
    let api = Api::new(&server);
    let preflight = |origin: &'static str| {
        api.http
            .request(
                reqwest::Method::OPTIONS,
                format!("{}/api/v1/accounts/{}", api.base_url, Uuid::new_v4()),
            )
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type, idempotency-key",
            )
            .send()
    };
    let allowed = preflight(APP_ORIGIN).await.unwrap();
    assert_eq!(allowed.status(), StatusCode::OK);
    assert_eq!(allowed.headers()["access-control-allow-origin"], APP_ORIGIN);
    let foreign = preflight("https://evil.example.test").await.unwrap();
    assert!(foreign
        .headers()
        .get("access-control-allow-origin")
        .is_none());
    assert_ne!(foreign.status(), StatusCode::OK);
}
