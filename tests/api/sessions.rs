//! Sessions and tokens end to end: refresh rotation with reuse detection, logout, expired,
//! tampered and foreign-key tokens, and deactivation and role changes taking effect on the
//! next request, in both APIs.
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{event_count, eventually, open_account, problem, Api, TestStack};

const ME: &str = "{ me { userId roles } }";

async fn refused(api: &Api, token: &str) {
    problem(api.me(token).await, StatusCode::UNAUTHORIZED).await;
    let graphql = api.graphql_response(token, ME).await;
    let body = problem(graphql, StatusCode::UNAUTHORIZED).await;
    assert_eq!(
        body["detail"],
        "the access token is missing, expired or invalid, or its session has ended"
    );
}

async fn session_revoked(stack: &TestStack, access_token: &str) -> bool {
    let claims: Value = serde_json::from_slice(&jwt_payload(access_token)).unwrap();
    sqlx::query_scalar("select revoked_at is not null from sessions where id = $1::uuid")
        .bind(claims["sid"].as_str().unwrap())
        .fetch_one(&stack.db)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_refresh_token_works_once_and_its_reuse_ends_the_whole_session() {
    let stack = TestStack::new().await;
    let tenant = stack.create_tenant("rotation").await;
    let server = stack.spawn(&["serve"]).await;
    let api = Api::new(&server);
    let first = api.sign_in(&tenant, &tenant.email).await;
    let other_session = api.sign_in(&tenant, &tenant.email).await;

    let response = api.refresh(&first["refresh_token"]).await;
    assert_eq!(response.status(), StatusCode::OK);
    let second: Value = response.json().await.unwrap();
    assert_eq!(second["token_type"], "Bearer");
    assert_ne!(second["refresh_token"], first["refresh_token"]);
    let access = second["access_token"].as_str().unwrap();
    assert_eq!(api.me(access).await.status(), StatusCode::OK);

    // The retired token comes back: someone holds a copy. The whole session ends.
    problem(
        api.refresh(&first["refresh_token"]).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert!(session_revoked(&stack, access).await);
    refused(&api, access).await;
    refused(&api, first["access_token"].as_str().unwrap()).await;
    problem(
        api.refresh(&second["refresh_token"]).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    // Only that session: the user's other one goes on.
    let other = other_session["access_token"].as_str().unwrap();
    assert_eq!(api.me(other).await.status(), StatusCode::OK);
    problem(
        api.refresh(&json!("not-a-token-we-issued")).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
}

#[tokio::test]
async fn two_refreshes_racing_with_one_token_end_the_session() {
    let stack = TestStack::new().await;
    let tenant = stack.create_tenant("race").await;
    let server = stack.spawn(&["command-api"]).await;
    let api = Api::new(&server);
    let pair = api.sign_in(&tenant, &tenant.email).await;

    let (one, two) = tokio::join!(
        api.refresh(&pair["refresh_token"]),
        api.refresh(&pair["refresh_token"])
    );
    let mut statuses = [one.status().as_u16(), two.status().as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 401]);
    let winner: Value = if one.status() == StatusCode::OK {
        one.json().await.unwrap()
    } else {
        two.json().await.unwrap()
    };
    let access = winner["access_token"].as_str().unwrap();
    assert!(session_revoked(&stack, access).await);
    problem(api.me(access).await, StatusCode::UNAUTHORIZED).await;
    problem(
        api.refresh(&winner["refresh_token"]).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
}

#[tokio::test]
async fn logout_ends_the_session_at_once_in_both_apis() {
    let stack = TestStack::new().await;
    let tenant = stack.create_tenant("logout").await;
    let server = stack.spawn(&["serve"]).await;
    let api = Api::new(&server);
    let pair = api.sign_in(&tenant, &tenant.email).await;
    let other = api.login(&tenant).await;
    let token = pair["access_token"].as_str().unwrap();
    let graphql = api.graphql(token, ME, None).await;
    assert_eq!(graphql["data"]["me"]["roles"], json!(["TENANT_ADMIN"]));

    let logout = api
        .http
        .post(format!("{}/api/v1/auth/logout", api.base_url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    assert!(logout.bytes().await.unwrap().is_empty());

    refused(&api, token).await;
    problem(
        api.refresh(&pair["refresh_token"]).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let before = event_count(&stack.db).await;
    let command = api
        .command(token, "accounts", Uuid::new_v4())
        .json(&open_account("After logout"))
        .send()
        .await
        .unwrap();
    problem(command, StatusCode::UNAUTHORIZED).await;
    assert_eq!(event_count(&stack.db).await, before);
    assert_eq!(api.me(&other).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn expired_tampered_and_foreign_tokens_are_refused() {
    let stack = TestStack::new().await;
    let tenant = stack.create_tenant("tokens").await;
    let short_lived = stack
        .spawn_with_env(&["serve"], &[("ACCESS_TOKEN_TTL_SECONDS", "3")])
        .await;
    let api = Api::new(&short_lived);
    let admin = api.login(&tenant).await;
    api.register(&admin, "viewer@tokens.test", json!(["Viewer"]), None)
        .await;
    let viewer = api.sign_in(&tenant, "viewer@tokens.test").await;
    let viewer = viewer["access_token"].as_str().unwrap();
    assert_eq!(api.me(viewer).await.status(), StatusCode::OK);

    // The viewer's signature over the admin's claims.
    let (header, rest) = viewer.split_once('.').unwrap();
    let (_, signature) = rest.split_once('.').unwrap();
    let admin_claims = admin.split('.').nth(1).unwrap();
    refused(&api, &format!("{header}.{admin_claims}.{signature}")).await;
    refused(&api, &format!("{header}.{admin_claims}.")).await;

    let other_key = stack
        .spawn_with_env(
            &["serve"],
            &[("JWT_SECRET", "another-deployment-key-of-32-bytes-or-more")],
        )
        .await;
    let other = Api::new(&other_key);
    let foreign = other.login(&tenant).await;
    assert_eq!(other.me(&foreign).await.status(), StatusCode::OK);
    refused(&api, &foreign).await;
    refused(&other, &admin).await;

    eventually("the access token to expire", || async {
        (api.me(viewer).await.status() == StatusCode::UNAUTHORIZED).then_some(())
    })
    .await;
    refused(&api, viewer).await;
}

#[tokio::test]
async fn role_changes_and_deactivation_apply_to_the_next_request() {
    let stack = TestStack::new().await;
    let tenant = stack.create_tenant("changes").await;
    let server = stack.spawn(&["serve"]).await;
    let api = Api::new(&server);
    let admin = api.login(&tenant).await;
    let manager = api
        .register(&admin, "manager@changes.test", json!(["Manager"]), None)
        .await;
    let pair = api.sign_in(&tenant, "manager@changes.test").await;
    let token = pair["access_token"].as_str().unwrap();
    let account = Uuid::new_v4();
    api.ok(token, account, open_account("Before")).await;

    let demote = json!({"type": "ChangeRoles", "roles": ["Viewer"]});
    api.ok_in(&admin, "users", manager, demote).await;
    let before = event_count(&stack.db).await;
    let denied = api
        .command(token, "accounts", account)
        .json(&json!({"type": "ChangeTier", "tier": "Enterprise"}))
        .send()
        .await
        .unwrap();
    problem(denied, StatusCode::FORBIDDEN).await;
    let me: Value = api.me(token).await.json().await.unwrap();
    assert_eq!(me["roles"], json!(["Viewer"]));
    assert_eq!(event_count(&stack.db).await, before);

    let deactivate = json!({"type": "DeactivateUser", "reason": "left the company"});
    api.ok_in(&admin, "users", manager, deactivate).await;
    refused(&api, token).await;
    assert!(session_revoked(&stack, token).await);
    problem(
        api.refresh(&pair["refresh_token"]).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let login = api
        .login_as(&tenant, "manager@changes.test", crate::helpers::PASSWORD)
        .await;
    problem(login, StatusCode::UNAUTHORIZED).await;
}

fn jwt_payload(token: &str) -> Vec<u8> {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap()
}

/// A deployment that forgot `APP_ENV`, or gave a guessable key, must not start: one captured
/// token would let anyone brute-force or look up the key and sign as any user.
#[tokio::test]
async fn weak_missing_or_built_in_signing_keys_refuse_to_start() {
    let stack = TestStack::new().await;
    let built_in = "local-development-only-signing-key-change-me";
    for (app_env, key, says) in [
        (None, None, "JWT_SECRET or JWT_SECRET_FILE must be set"),
        (Some("production"), Some(""), "at least 32 bytes"),
        (Some("production"), Some("k"), "at least 32 bytes"),
        (
            Some("test"),
            Some("thirty-one-bytes-is-not-enough!"),
            "at least 32 bytes",
        ),
        (None, Some(built_in), "built-in development signing key"),
        (
            Some("staging"),
            Some(built_in),
            "built-in development signing key",
        ),
    ] {
        let mut command = stack.command(&["command-api"]);
        command.env_remove("APP_ENV").env_remove("JWT_SECRET");
        if let Some(app_env) = app_env {
            command.env("APP_ENV", app_env);
        }
        if let Some(key) = key {
            command.env("JWT_SECRET", key);
        }
        let output = tokio::time::timeout(Duration::from_secs(20), command.output())
            .await
            .unwrap_or_else(|_| panic!("{app_env:?}/{key:?} started instead of refusing"))
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{app_env:?}/{key:?} started");
        assert!(stderr.contains(says), "{app_env:?}/{key:?}: {stderr}");
    }
    // Local development keeps working without a key, and a long key starts anywhere.
    for (app_env, key) in [
        ("local", None),
        (
            "production",
            Some("a-real-deployment-key-of-at-least-32-bytes"),
        ),
    ] {
        let mut command = stack.command(&["command-api"]);
        // A real deployment refuses the test clock too.
        command
            .env_remove("JWT_SECRET")
            .env("APP_ENV", app_env)
            .env("B2B_CLOCK", "system");
        if let Some(key) = key {
            command.env("JWT_SECRET", key);
        }
        let server = stack.spawn_command(command).await;
        let health = reqwest::get(format!("{}/health/live", server.url()))
            .await
            .unwrap();
        assert_eq!(health.status(), StatusCode::OK, "{app_env}/{key:?}");
    }
}
