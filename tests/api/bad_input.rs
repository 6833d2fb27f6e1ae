use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{open_account, problem, Api, TestStack};

async fn setup() -> (TestStack, crate::helpers::Process, String, Uuid) {
    let stack = TestStack::new().await;
    let tenant = stack.create_tenant("strict").await;
    let server = stack.spawn(&["command-api"]).await;
    let token = Api::new(&server).login(&tenant).await;
    let id = Uuid::new_v4();
    Api::new(&server)
        .ok(&token, id, open_account("Soylent"))
        .await;
    (stack, server, token, id)
}

#[tokio::test]
async fn each_class_of_bad_input_gets_its_status_and_problem_and_appends_nothing() {
    let (stack, server, token, id) = setup().await;
    let api = Api::new(&server);
    let before = stack.account_event_count().await;

    let malformed = api
        .command(&token, "accounts", id)
        .header("content-type", "application/json")
        .body("{\"type\": \"ChangeTier\",")
        .send()
        .await
        .unwrap();
    let body = problem(malformed, StatusCode::BAD_REQUEST).await;
    assert_eq!(body["type"], "/problems/malformed-json");

    // One key twice means different things to different parsers: refused, not guessed at.
    let twice = api
        .command(&token, "accounts", id)
        .header("content-type", "application/json")
        .body(r#"{"type": "ChangeTier", "tier": "Gold", "tier": "Standard"}"#)
        .send()
        .await
        .unwrap();
    let body = problem(twice, StatusCode::BAD_REQUEST).await;
    assert_eq!(body["type"], "/problems/malformed-json");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("`tier` appears twice"),
        "{body}"
    );

    // A body that is not declared JSON is not read as JSON.
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let mut request = api.command(&token, "accounts", id);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let response = request
            .body(r#"{"type": "ChangeTier", "tier": "Standard"}"#)
            .send()
            .await
            .unwrap();
        let body = problem(response, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
        assert_eq!(
            body["type"], "/problems/unsupported-media-type",
            "{content_type:?}"
        );
    }

    let unknown = api
        .command(&token, "accounts", id)
        .json(&json!({"type": "Teleport"}))
        .send()
        .await
        .unwrap();
    let body = problem(unknown, StatusCode::BAD_REQUEST).await;
    assert_eq!(body["type"], "/problems/unknown-command");
    assert!(body["detail"].as_str().unwrap().contains("Teleport"));

    let invalid = api
        .command(&token, "accounts", id)
        .json(&json!({"type": "UpdateAccountDetails", "billing_email": "not-an-email"}))
        .send()
        .await
        .unwrap();
    let body = problem(invalid, StatusCode::BAD_REQUEST).await;
    assert_eq!(body["errors"][0]["field"], "billing_email", "{body}");

    let wrong_type = api
        .command(&token, "accounts", id)
        .json(&json!({"type": "SetApiQuota", "requests_per_minute": "many"}))
        .send()
        .await
        .unwrap();
    let body = problem(wrong_type, StatusCode::BAD_REQUEST).await;
    assert_eq!(body["errors"][0]["field"], "requests_per_minute", "{body}");

    // A prospect was never suspended, so it cannot be reinstated.
    let rule = api
        .command(&token, "accounts", id)
        .json(&json!({"type": "ReinstateAccount"}))
        .send()
        .await
        .unwrap();
    let body = problem(rule, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(
        body["type"],
        "/problems/rule-violated/account_not_suspended"
    );

    let forbidden = api
        .command(&token, "accounts", id)
        .json(&json!({"type": "ActivateAccount", "quote_id": Uuid::new_v4()}))
        .send()
        .await
        .unwrap();
    let body = problem(forbidden, StatusCode::FORBIDDEN).await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("done by the system"),
        "{body}"
    );

    let stale = api
        .command(&token, "accounts", id)
        .header("If-Match", "\"7\"")
        .json(&json!({"type": "ChangeTier", "tier": "Standard"}))
        .send()
        .await
        .unwrap();
    let body = problem(stale, StatusCode::CONFLICT).await;
    assert!(
        body["detail"].as_str().unwrap().contains("version 1"),
        "{body}"
    );

    let no_token = api
        .http
        .post(format!("{}/api/v1/accounts/{id}", api.base_url))
        .json(&json!({"type": "ChangeTier", "tier": "Standard"}))
        .send()
        .await
        .unwrap();
    problem(no_token, StatusCode::UNAUTHORIZED).await;

    let bad_token = api
        .command("not-a-token", "accounts", id)
        .json(&json!({"type": "ChangeTier", "tier": "Standard"}))
        .send()
        .await
        .unwrap();
    problem(bad_token, StatusCode::UNAUTHORIZED).await;

    let huge = json!({"type": "UpdateAccountDetails", "name": "x".repeat(100_000)});
    let too_large = api
        .command(&token, "accounts", id)
        .json(&huge)
        .send()
        .await
        .unwrap();
    problem(too_large, StatusCode::PAYLOAD_TOO_LARGE).await;

    let missing = api
        .command(&token, "accounts", Uuid::new_v4())
        .json(&json!({"type": "ReinstateAccount"}))
        .send()
        .await
        .unwrap();
    problem(missing, StatusCode::NOT_FOUND).await;

    assert_eq!(
        stack.account_event_count().await,
        before,
        "no error may append an event"
    );
}

/// A field the document calls invalid by itself is a 400 naming it; what only a rule between
/// fields or against the aggregate refuses is a 422 with the rule's code, never a 400 (a client
/// built from the document sends it); a count written `120.0` is the integer it is. Refusals
/// append nothing.
#[tokio::test]
async fn a_field_is_400_and_a_rule_between_fields_or_against_state_is_422() {
    let (stack, server, token, id) = setup().await;
    let api = Api::new(&server);
    let before = crate::helpers::event_count(&stack.db).await;
    let send = |collection: &'static str, id: Uuid, body: Value| {
        api.command(&token, collection, id).json(&body).send()
    };

    for amount in [
        "-1",
        "+1",
        "01.00",
        "1e3",
        "1_000",
        "1.0001",
        "1000000000000000001",
    ] {
        let refused = send(
            "accounts",
            id,
            json!({"type": "SetCreditLimit", "amount": amount}),
        )
        .await
        .unwrap();
        let body = problem(refused, StatusCode::BAD_REQUEST).await;
        assert_eq!(body["errors"][0]["field"], "amount", "{amount}: {body}");
    }
    let cent_fraction = json!({"type": "SetCreditLimit", "amount": "1.001"});
    let body = problem(
        send("accounts", id, cent_fraction).await.unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(body["type"], "/problems/rule-violated/too_many_decimals");

    let backwards = json!({"type": "DraftContract", "account_id": id, "title": "Support",
        "value": "100.00", "currency": "EUR", "start_date": "2030-06-01",
        "end_date": "2030-01-01", "terms": "Net 30"});
    let body = problem(
        send("contracts", Uuid::new_v4(), backwards).await.unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(body["type"], "/problems/rule-violated/end_not_after_start");

    let linked_viewer = json!({"type": "RegisterUser", "email": "v@strict.test",
        "display_name": "V", "roles": ["Viewer"], "account_id": id});
    let body = problem(
        send("users", Uuid::new_v4(), linked_viewer).await.unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(body["type"], "/problems/rule-violated/not_a_partner");
    assert_eq!(
        crate::helpers::event_count(&stack.db).await,
        before,
        "no refusal may append an event"
    );

    let whole = json!({"type": "SetApiQuota", "requests_per_minute": 120.0});
    let taken = send("accounts", id, whole).await.unwrap();
    assert_eq!(
        taken.status(),
        StatusCode::OK,
        "{}",
        taken.text().await.unwrap()
    );
    assert_eq!(crate::helpers::event_count(&stack.db).await, before + 1);
}

#[tokio::test]
async fn a_matching_if_match_runs_the_command() {
    let (stack, server, token, id) = setup().await;
    let api = Api::new(&server);
    let response = api
        .command(&token, "accounts", id)
        .header("If-Match", "\"1\"")
        .json(&json!({"type": "ChangeTier", "tier": "Standard"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["version"], 2);
    assert_eq!(stack.account_event_count().await, 2);
}

#[tokio::test]
async fn wrong_credentials_and_unknown_tenants_get_the_same_401() {
    let (_stack, server, _token, _id) = setup().await;
    let api = Api::new(&server);
    let mut bodies = Vec::new();
    for (tenant, email, password) in [
        ("strict", "admin@strict.test", "wrong password!!"),
        ("strict", "nobody@strict.test", crate::helpers::PASSWORD),
        ("nosuch", "admin@strict.test", crate::helpers::PASSWORD),
    ] {
        let response = api
            .http
            .post(format!("{}/api/v1/auth/login", api.base_url))
            .json(&json!({"tenant": tenant, "email": email, "password": password}))
            .send()
            .await
            .unwrap();
        bodies.push(problem(response, StatusCode::UNAUTHORIZED).await);
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "{bodies:?}");
}

#[tokio::test]
async fn bad_sign_in_bodies_headers_and_methods_get_problems_not_server_errors() {
    let (stack, server, token, id) = setup().await;
    let api = Api::new(&server);
    let login = format!("{}/api/v1/auth/login", api.base_url);
    let before = crate::helpers::event_count(&stack.db).await;
    for (body, field) in [
        (
            json!({"tenant": "strict", "email": "a\u{0}b@strict.test", "password": "x"}),
            Some("email"),
        ),
        (
            json!({"tenant": "str\u{0}ict", "email": "a@strict.test", "password": "x"}),
            Some("tenant"),
        ),
        (json!({"tenant": "strict", "email": "a@strict.test"}), None),
        (
            json!({"tenant": "strict", "email": "a@strict.test", "password": "x", "extra": 1}),
            None,
        ),
    ] {
        let response = api.http.post(&login).json(&body).send().await.unwrap();
        let problem = problem(response, StatusCode::BAD_REQUEST).await;
        if let Some(field) = field {
            assert_eq!(problem["errors"][0]["field"], field, "{problem}");
        }
    }
    let not_json = api
        .http
        .post(&login)
        .body("tenant=strict")
        .send()
        .await
        .unwrap();
    let refused = problem(not_json, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
    assert_eq!(refused["type"], "/problems/unsupported-media-type");

    let weak = json!({"type": "RegisterUser", "email": "weak@strict.test",
        "display_name": "Weak", "roles": ["Viewer"], "password": "short"});
    let weak = api
        .command(&token, "users", Uuid::new_v4())
        .json(&weak)
        .send()
        .await
        .unwrap();
    let body = problem(weak, StatusCode::BAD_REQUEST).await;
    assert_eq!(body["errors"][0]["field"], "password", "{body}");

    let bad_correlation = api
        .command(&token, "accounts", id)
        .header("X-Correlation-Id", "not-a-uuid")
        .json(&json!({"type": "ChangeTier", "tier": "Standard"}))
        .send()
        .await
        .unwrap();
    let body = problem(bad_correlation, StatusCode::BAD_REQUEST).await;
    assert_eq!(body["detail"], "x-correlation-id must be a UUID");

    for (method, path) in [
        (reqwest::Method::GET, "/api/v1/auth/login".to_owned()),
        (reqwest::Method::DELETE, format!("/api/v1/accounts/{id}")),
        (reqwest::Method::PUT, "/api/v1/auth/me".to_owned()),
    ] {
        let response = api
            .http
            .request(method.clone(), format!("{}{path}", api.base_url))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
    }
    assert_eq!(crate::helpers::event_count(&stack.db).await, before);
}

/// The sign-in and two-factor routes take a JSON object: serde alone would fill their requests
/// from an array of fields in order (`[null]` enrolled a new TOTP secret).
#[tokio::test]
async fn the_auth_routes_refuse_a_body_that_is_not_an_object_and_change_nothing() {
    let (stack, server, token, _) = setup().await;
    let api = Api::new(&server);
    for route in [
        "login",
        "refresh",
        "login/totp",
        "totp/enroll",
        "totp/confirm",
    ] {
        for body in ["[null]", "[]", "\"x\"", "null"] {
            let refused = api
                .http
                .post(format!("{}/api/v1/auth/{route}", api.base_url))
                .bearer_auth(&token)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            let refusal = problem(refused, StatusCode::BAD_REQUEST).await;
            assert_eq!(
                refusal["type"], "/problems/malformed-json",
                "{route} {body}"
            );
        }
    }
    let enrolments: i64 = sqlx::query_scalar("select count(*) from user_totp")
        .fetch_one(&stack.db)
        .await
        .unwrap();
    assert_eq!(enrolments, 0, "no secret was enrolled");
}
