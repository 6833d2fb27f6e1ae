//! Careless or hostile input: it gets a clear 4xx, changes nothing, and the server keeps
//! answering; every response carries the security headers; CORS only for configured origins.
use std::time::Duration;

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
    assert_problem(foreign).await;
}

/// Asserts an error answered as `application/problem+json` whose `status` repeats the HTTP one.
async fn assert_problem(response: reqwest::Response) -> serde_json::Value {
    let status = response.status();
    assert!(status.is_client_error(), "{status}");
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(content_type, "application/problem+json");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], status.as_u16(), "{body}");
    assert!(
        body["type"].as_str().unwrap().starts_with("/problems/"),
        "{body}"
    );
    assert!(body["detail"].is_string(), "{body}");
    body
}

/// Errors no route answers (no such path, a method the path does not take) have the same
/// problem+json shape as every route's errors; a 405 still says which methods are allowed.
#[tokio::test]
async fn errors_before_any_route_are_problems_too() {
    let stack = TestStack::new().await;
    let server = stack.spawn(&["serve"]).await;
    let api = Api::new(&server);
    let missing = api
        .http
        .get(format!("{}/no/such/route", api.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let body = assert_problem(missing).await;
    assert_eq!(body["type"], "/problems/not-found");
    let wrong_method = api
        .http
        .delete(format!(
            "{}/api/v1/accounts/{}",
            api.base_url,
            Uuid::new_v4()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_method.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(wrong_method.headers()["allow"], "POST");
    let body = assert_problem(wrong_method).await;
    assert_eq!(body["type"], "/problems/method-not-allowed");
    // The security headers are still there.
    let again = api
        .http
        .get(format!("{}/no/such/route", api.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(again.headers()["x-content-type-options"], "nosniff");
}

/// One hostile request: where it goes, its body, and the statuses it may get.
struct Hostile {
    path: &'static str,
    body: Vec<u8>,
    expect: &'static [u16],
}

fn hostile_requests(account: Uuid) -> Vec<Hostile> {
    let command = Box::leak(format!("/api/v1/accounts/{account}").into_boxed_str());
    let nested = |depth| format!("{}{}", "[".repeat(depth), "]".repeat(depth)).into_bytes();
    let oversized = format!(
        r#"{{"type":"UpdateAccountDetails","name":"{}"}}"#,
        "x".repeat(1 << 20)
    );
    let deep_query = format!(r#"{{"query":"{}"}}"#, "{ accounts ".repeat(5000));
    let huge_variable = r#"{"query":"query($n: Int) { accounts(first: $n) { totalCount } }","variables":{"n":1e999999}}"#;
    let mut requests = Vec::new();
    for path in [command, "/api/v1/auth/login", "/graphql"] {
        requests.push(Hostile {
            path,
            body: oversized.clone().into_bytes(),
            expect: &[413],
        });
        requests.push(Hostile {
            path,
            body: nested(20_000),
            expect: &[400],
        });
        requests.push(Hostile {
            path,
            body: vec![b'{', 0xc3, 0x28, 0xff, b'}'],
            expect: &[400],
        });
    }
    requests.extend([
        Hostile {
            path: command,
            body: br#"{"type":"SetCreditLimit","amount":1e999999}"#.to_vec(),
            expect: &[400],
        },
        Hostile {
            path: command,
            body: br#"{"type":"SetApiQuota","requests_per_minute":184467440737095516160}"#.to_vec(),
            expect: &[400],
        },
        Hostile {
            path: "/api/v1/auth/login",
            body: format!(
                r#"{{"tenant":"t","email":"{}","password":"p"}}"#,
                "e".repeat(10_000)
            )
            .into_bytes(),
            expect: &[400],
        },
        // A GraphQL document nested far deeper than any limit: refused, not a stack overflow.
        Hostile {
            path: "/graphql",
            body: deep_query.into_bytes(),
            expect: &[200, 400],
        },
        Hostile {
            path: "/graphql",
            body: huge_variable.as_bytes().to_vec(),
            expect: &[400],
        },
    ]);
    requests
}

#[tokio::test]
async fn a_flood_of_hostile_requests_leaves_the_server_answering_and_the_store_unchanged() {
    use futures::StreamExt;

    let stack = TestStack::new().await;
    let tenant = stack.create_tenant("flood").await;
    let server = stack.spawn(&["serve"]).await;
    let api = Api::new(&server);
    let token = api.login(&tenant).await;
    let account = Uuid::new_v4();
    api.ok(&token, account, open_account("Target")).await;
    let before = crate::helpers::event_count(&stack.db).await;

    let requests: Vec<Hostile> = (0..20).flat_map(|_| hostile_requests(account)).collect();
    let total = requests.len();
    let answers: Vec<(&str, u16, String)> = futures::stream::iter(requests)
        .map(|hostile| {
            let (api, token) = (&api, &token);
            async move {
                let response = api
                    .http
                    .post(format!("{}{}", api.base_url, hostile.path))
                    .bearer_auth(token)
                    .header("content-type", "application/json")
                    .body(hostile.body)
                    .send()
                    .await
                    .unwrap();
                let status = response.status().as_u16();
                assert!(
                    hostile.expect.contains(&status),
                    "{} → {status}",
                    hostile.path
                );
                let content_type = response.headers()["content-type"]
                    .to_str()
                    .unwrap()
                    .to_owned();
                (hostile.path, status, content_type)
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;

    assert_eq!(answers.len(), total);
    for (path, status, content_type) in &answers {
        if *status != 200 {
            assert_eq!(content_type, "application/problem+json", "{path} {status}");
        }
    }
    assert_eq!(crate::helpers::event_count(&stack.db).await, before);
    let live = api
        .http
        .get(format!("{}/health/live", api.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), StatusCode::OK);
    let renamed = json!({"type": "UpdateAccountDetails", "name": "Still here"});
    api.ok(&token, account, renamed).await;
    assert_eq!(crate::helpers::event_count(&stack.db).await, before + 1);
}

/// Two TenantAdmins demoting and deactivating each other at once: whatever wins, the tenant
/// keeps an active TenantAdmin, and every loser gets a client error, never a server error.
#[tokio::test]
async fn two_admins_removing_each_other_at_once_leave_the_tenant_an_admin() {
    use futures::StreamExt;

    let stack = TestStack::new().await;
    let server = stack.spawn(&["command-api"]).await;
    let api = Api::new(&server);
    for trial in 0..3 {
        let tenant = stack.create_tenant(&format!("admins-{trial}")).await;
        let first = api.login(&tenant).await;
        let first_id: Uuid =
            sqlx::query_scalar("select user_id from user_credentials where tenant_id = $1")
                .bind(tenant.id)
                .fetch_one(&stack.db)
                .await
                .unwrap();
        let email = format!("second@admins-{trial}.test");
        let second_id = api
            .register(&first, &email, json!(["TenantAdmin"]), None)
            .await;
        let second = api.sign_in(&tenant, &email).await["access_token"]
            .as_str()
            .unwrap()
            .to_owned();
        let removals = (0..20).map(|n| {
            let (token, target) = match n % 2 {
                0 => (&first, second_id),
                _ => (&second, first_id),
            };
            let body = match n % 4 {
                0 | 1 => json!({"type": "ChangeRoles", "roles": ["Viewer"]}),
                _ => json!({"type": "DeactivateUser", "reason": "removed by the other admin"}),
            };
            api.command(token, "users", target).json(&body).send()
        });
        let statuses: Vec<u16> = futures::stream::iter(removals)
            .buffer_unordered(20)
            .map(|response| response.unwrap().status().as_u16())
            .collect()
            .await;
        assert!(statuses.iter().all(|s| *s < 500), "{statuses:?}");
        let admins: i64 = sqlx::query_scalar(
            "select count(*) from user_credentials \
             where tenant_id = $1 and active and 'TenantAdmin' = any(roles)",
        )
        .bind(tenant.id)
        .fetch_one(&stack.db)
        .await
        .unwrap();
        assert_eq!(admins, 1, "trial {trial}: {statuses:?}");
    }
}

/// A body that trickles in must not hold a connection (and a worker) for ever: after 10 s
/// the request is answered 408 as a problem, and nothing is appended.
#[tokio::test]
async fn a_body_that_never_finishes_arriving_times_out() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let stack = TestStack::new().await;
    let tenant = stack.create_tenant("slowloris").await;
    let server = stack.spawn(&["command-api"]).await;
    let api = Api::new(&server);
    let token = api.login(&tenant).await;
    let before = crate::helpers::event_count(&stack.db).await;
    let address = server.url().trim_start_matches("http://").to_owned();
    let mut socket = tokio::net::TcpStream::connect(&address).await.unwrap();
    let head = format!(
        "POST /api/v1/accounts/{} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: 200\r\n\r\n{{\"type\": \"Open",
        Uuid::new_v4()
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    let started = std::time::Instant::now();
    let mut answer = vec![0u8; 4096];
    let read = tokio::time::timeout(Duration::from_secs(30), socket.read(&mut answer))
        .await
        .expect("the server answers a stalled body")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..read]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");
    assert!(
        started.elapsed() >= Duration::from_secs(9),
        "not before the limit"
    );
    assert_eq!(crate::helpers::event_count(&stack.db).await, before);
}

/// `/metrics` is for operators: not on the API's address (where anyone could read
/// deployment-wide counts), but on its own, loopback by default.
#[tokio::test]
async fn metrics_are_served_apart_from_the_api() {
    let stack = TestStack::new().await;
    let (server, metrics_addr) = stack.spawn_serve_with_metrics().await;
    let on_api = reqwest::get(format!("{}/metrics", server.url()))
        .await
        .unwrap();
    assert_eq!(on_api.status(), StatusCode::NOT_FOUND);
    assert_problem(on_api).await;
    let scraped = reqwest::get(format!("http://{metrics_addr}/metrics"))
        .await
        .unwrap();
    assert_eq!(scraped.status(), StatusCode::OK);
    let text = scraped.text().await.unwrap();
    assert!(text.contains("b2b_events_stored_position "), "{text}");
    assert!(text.contains("b2b_events_unpublished "), "{text}");
}

/// SIGTERM is an ordinary stop: every part winds down and the process exits 0 (a supervisor
/// that restarts failed processes must not see a failure), for the whole `serve` and for a
/// worker-only process.
#[tokio::test]
async fn sigterm_stops_a_process_cleanly() {
    let stack = TestStack::new().await;
    for args in [&["serve"][..], &["projector"][..]] {
        let mut process = stack.spawn(args).await;
        // Let the workers start (connections, listeners) before the signal.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let pid = process.child.id().expect("running").to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(sent.success());
        let status = tokio::time::timeout(Duration::from_secs(30), process.child.wait())
            .await
            .expect("the process stopped")
            .unwrap();
        assert!(status.success(), "{args:?} exited with {status}");
    }
}
