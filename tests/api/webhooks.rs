//! Outgoing webhooks against a real HTTP receiver on loopback (an actix-web server this test
//! starts): every matching event arrives once and in order per aggregate, also after the
//! receiver was down and after it answered 500s; each signature verifies with an independent
//! HMAC-SHA256; no event of a type the endpoint did not ask for, and none of another tenant,
//! arrives; an endpoint failing past its (shrunk) retry window is disabled with its deliveries
//! parked, then replayed on request; a process killed mid-delivery sends it again. The URL rule
//! answers 422 and stores nothing.
use std::collections::{BTreeMap, HashSet};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};
use sha2::Sha256;
use uuid::Uuid;

use crate::helpers::{
    eventually, eventually_within, open_account, problem, Api, TestStack, TEST_JWT_SECRET,
};

/// How the receiver answers.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Mode {
    Accept,
    Fail,
    /// Takes the request and never answers.
    Hang,
}

#[derive(Clone, Debug)]
struct Received {
    id: String,
    timestamp: String,
    signature: String,
    body: String,
    answered: Mode,
}

#[derive(Clone)]
struct Receiver {
    state: Arc<Mutex<(Mode, Vec<Received>)>>,
    port: u16,
}

impl Receiver {
    /// A free loopback port, not yet listened on: the receiver is down until `start`.
    fn new(mode: Mode) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Self {
            state: Arc::new(Mutex::new((mode, Vec::new()))),
            port,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    fn set_mode(&self, mode: Mode) {
        self.state.lock().unwrap().0 = mode;
    }

    fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().1.clone()
    }

    /// What was answered 2xx.
    fn accepted(&self) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.answered == Mode::Accept)
            .collect()
    }

    fn start(&self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).unwrap();
        let receiver = web::Data::new(self.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(receiver.clone())
                .route("/hook", web::post().to(hook))
        })
        .workers(2)
        .listen(listener)
        .unwrap()
        .run();
        tokio::spawn(server);
    }
}

async fn hook(receiver: web::Data<Receiver>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    let mode = {
        let mut state = receiver.state.lock().unwrap();
        let mode = state.0;
        state.1.push(Received {
            id: header("webhook-id"),
            timestamp: header("webhook-timestamp"),
            signature: header("webhook-signature"),
            body: String::from_utf8(body.to_vec()).unwrap(),
            answered: mode,
        });
        mode
    };
    match mode {
        Mode::Accept => HttpResponse::NoContent().finish(),
        Mode::Fail => HttpResponse::InternalServerError().body("try later"),
        Mode::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            HttpResponse::NoContent().finish()
        }
    }
}

/// The Standard Webhooks check, written from the specification (not the server's code).
fn verifies(secret: &str, received: &Received) -> bool {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{}.{}.{}", received.id, received.timestamp, received.body).as_bytes());
    let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    received.signature.split(' ').any(|s| s == expected)
}

async fn webhook_command(api: &Api, token: &str, id: Uuid, body: Value) -> Response {
    api.http
        .post(format!("{}/api/v1/webhooks/{id}", api.base_url))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn webhook_ok(api: &Api, token: &str, id: Uuid, body: Value) -> Value {
    let response = webhook_command(api, token, id, body).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    response.json().await.unwrap()
}

/// Registers an endpoint; returns its id and secret.
async fn register(api: &Api, token: &str, url: &str, types: &[&str]) -> (Uuid, String) {
    let id = Uuid::new_v4();
    let body = webhook_ok(
        api,
        token,
        id,
        json!({"type": "RegisterWebhook", "url": url, "event_types": types,
               "description": "ERP"}),
    )
    .await;
    assert_eq!(body["id"], json!(id.to_string()));
    let secret = body["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{secret}");
    (id, secret)
}

/// Opens an account and changes its tier `changes` times: 1 + `changes` subscribed events.
async fn account_with_changes(api: &Api, token: &str, changes: usize) -> Uuid {
    let id = Uuid::new_v4();
    api.ok(token, id, open_account("Hooked")).await;
    for i in 0..changes {
        let tier = ["Enterprise", "Gold"][i % 2];
        api.ok(token, id, json!({"type": "ChangeTier", "tier": tier}))
            .await;
    }
    id
}

/// The events the receiver accepted, per aggregate, in arrival order: (version, type).
fn accepted_by_aggregate(receiver: &Receiver) -> BTreeMap<String, Vec<(i64, String)>> {
    let mut streams: BTreeMap<String, Vec<(i64, String)>> = BTreeMap::new();
    for received in receiver.accepted() {
        let body: Value = serde_json::from_str(&received.body).unwrap();
        streams
            .entry(body["data"]["aggregate_id"].as_str().unwrap().to_owned())
            .or_default()
            .push((
                body["data"]["version"].as_i64().unwrap(),
                body["type"].as_str().unwrap().to_owned(),
            ));
    }
    streams
}

async fn count(stack: &TestStack, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(&stack.db).await.unwrap()
}

fn fast_retries<'a>() -> Vec<(&'a str, &'a str)> {
    vec![
        ("WEBHOOK_RETRY_FIRST_MS", "100"),
        ("WEBHOOK_RETRY_MAX_SECONDS", "1"),
        ("WEBHOOK_POLL_MS", "50"),
    ]
}

#[tokio::test]
async fn every_matching_event_arrives_once_in_order_and_signed_after_downtime_and_500s() {
    let stack = TestStack::new().await;
    let tenant = stack.create_tenant("hooks-a").await;
    let other = stack.create_tenant("hooks-b").await;
    let server = stack.spawn_with_env(&["serve"], &fast_retries()).await;
    let api = Api::new(&server);
    let admin = api.login(&tenant).await;
    let other_admin = api.login(&other).await;
    // Down: nothing listens on its port yet.
    let receiver = Receiver::new(Mode::Fail);
    let (endpoint, secret) = register(
        &api,
        &admin,
        &receiver.url(),
        &["AccountOpened", "AccountTierChanged"],
    )
    .await;
    // The other tenant subscribes to everything, on a receiver of its own.
    let other_receiver = Receiver::new(Mode::Accept);
    other_receiver.start();
    register(&api, &other_admin, &other_receiver.url(), &["*"]).await;

    let mut ours = Vec::new();
    for _ in 0..4 {
        let id = account_with_changes(&api, &admin, 3).await;
        // Not subscribed to: must never arrive.
        api.ok(
            &admin,
            id,
            json!({"type": "UpdateAccountDetails", "name": "Renamed"}),
        )
        .await;
        ours.push(id.to_string());
    }
    let theirs = account_with_changes(&api, &other_admin, 2).await;

    eventually("attempts against the receiver while it is down", || async {
        let failed = count(
            &stack,
            "select count(*) from webhook_attempts where status_code is null",
        )
        .await;
        (failed >= 2).then_some(())
    })
    .await;
    // Up, but answering 500 for a while, then accepting.
    receiver.start();
    eventually("500s answered", || async {
        (receiver.received().len() >= 3).then_some(())
    })
    .await;
    receiver.set_mode(Mode::Accept);
    let expected: usize = 4 * 4;
    eventually_within("every delivery", Duration::from_secs(60), || async {
        (receiver.accepted().len() >= expected).then_some(())
    })
    .await;
    // Let a duplicate, if one were coming, arrive.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let accepted = receiver.accepted();
    let ids: HashSet<&str> = accepted.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids.len(), accepted.len(), "a delivery was accepted twice");
    assert_eq!(accepted.len(), expected);
    for received in receiver.received() {
        assert!(verifies(&secret, &received), "{received:?}");
        let sent_at: i64 = received.timestamp.parse().unwrap();
        assert!((chrono::Utc::now().timestamp() - sent_at).abs() < 300);
    }
    let streams = accepted_by_aggregate(&receiver);
    assert_eq!(
        streams.keys().cloned().collect::<HashSet<_>>(),
        ours.iter().cloned().collect()
    );
    for (aggregate, events) in &streams {
        let versions: Vec<i64> = events.iter().map(|(v, _)| *v).collect();
        assert_eq!(versions, vec![1, 2, 3, 4], "{aggregate}: {events:?}");
        assert_eq!(events[0].1, "AccountOpened");
        assert!(events[1..].iter().all(|(_, t)| t == "AccountTierChanged"));
    }
    // The other tenant's receiver got its own events only, ours none.
    eventually("the other tenant's deliveries", || async {
        (other_receiver.accepted().len() >= 3).then_some(())
    })
    .await;
    for received in other_receiver.received() {
        let body: Value = serde_json::from_str(&received.body).unwrap();
        assert_eq!(
            body["data"]["aggregate_id"],
            json!(theirs.to_string()),
            "{body}"
        );
    }

    // The log: 500s and refused connections were attempts, each with its latency.
    let query = format!(
        "{{ webhookEndpoints {{ id url eventTypes enabled }} \
            webhookDeliveries(endpointId: \"{endpoint}\", first: 200) {{ id status attempts \
              eventType version lastStatusCode nextAttemptAt \
              attemptLog {{ attempt statusCode error latencyMs }} }} }}"
    );
    let data = api.graphql(&admin, &query, None).await;
    let endpoints = data["data"]["webhookEndpoints"].as_array().unwrap();
    assert_eq!(endpoints.len(), 1, "{data}");
    assert_eq!(endpoints[0]["url"], json!(receiver.url()));
    assert!(!data.to_string().contains(&secret));
    let deliveries = data["data"]["webhookDeliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), expected, "{data}");
    assert!(deliveries
        .iter()
        .all(|d| d["status"] == "DELIVERED" && d["lastStatusCode"] == 204));
    let attempts: Vec<&Value> = deliveries
        .iter()
        .flat_map(|d| d["attemptLog"].as_array().unwrap())
        .collect();
    assert!(attempts.iter().any(|a| a["statusCode"] == 500), "{data}");
    assert!(attempts
        .iter()
        .any(|a| a["statusCode"].is_null() && a["error"].is_string()));
    assert!(attempts
        .iter()
        .all(|a| a["latencyMs"].as_i64().unwrap() >= 0));
    // Only TenantAdmins read endpoints and deliveries.
    api.register(&admin, "viewer@hooks-a.test", json!(["Viewer"]), None)
        .await;
    let viewer = api.sign_in(&tenant, "viewer@hooks-a.test").await;
    let viewer = viewer["access_token"].as_str().unwrap();
    let refused = api
        .graphql(viewer, "{ webhookEndpoints { id } }", None)
        .await;
    assert_eq!(
        refused["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{refused}"
    );
    // Another tenant's admin sees none of it.
    let theirs = api.graphql(&other_admin, &query, None).await;
    assert_eq!(theirs["data"]["webhookDeliveries"], json!([]), "{theirs}");
    assert_eq!(
        theirs["data"]["webhookEndpoints"].as_array().unwrap().len(),
        1
    );
}

#[tokio::test]
async fn an_endpoint_failing_past_its_retry_window_is_disabled_parked_and_replayed_on_request() {
    let stack = TestStack::new().await;
    let tenant = stack.create_tenant("hooks-park").await;
    let metrics = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let metrics = metrics.to_string();
    let mut env = fast_retries();
    // Long enough for both events' deliveries to be recorded before the endpoint is disabled
    // even on a loaded machine (a disabled endpoint records nothing new).
    env.push(("WEBHOOK_RETRY_WINDOW_SECONDS", "6"));
    env.push(("METRICS_ADDR", &metrics));
    let server = stack.spawn_with_env(&["serve"], &env).await;
    let api = Api::new(&server);
    let admin = api.login(&tenant).await;
    let receiver = Receiver::new(Mode::Fail);
    receiver.start();
    let (endpoint, secret) = register(&api, &admin, &receiver.url(), &["*"]).await;
    let first = account_with_changes(&api, &admin, 1).await;
    eventually("both deliveries recorded", || async {
        let recorded = count(&stack, "select count(*) from webhook_deliveries").await;
        (recorded == 2).then_some(())
    })
    .await;
    let disabled = "{ webhookEndpoints { enabled disabledReason } }";
    eventually("the endpoint disabled", || async {
        let data = api.graphql(&admin, disabled, None).await;
        (data["data"]["webhookEndpoints"][0]["disabledReason"] == "failing").then_some(())
    })
    .await;
    assert_eq!(
        count(
            &stack,
            "select count(*) from webhook_deliveries where status = 'parked'"
        )
        .await,
        2
    );
    // Disabled: a new event is not recorded for it, and a redelivery is refused until enabled.
    account_with_changes(&api, &admin, 0).await;
    let redeliver = json!({"type": "RedeliverWebhook"});
    let refused = webhook_command(&api, &admin, endpoint, redeliver.clone()).await;
    let body = problem(refused, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(
        body["type"].as_str().unwrap().ends_with("webhook_disabled"),
        "{body}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        count(&stack, "select count(*) from webhook_deliveries").await,
        2
    );

    receiver.set_mode(Mode::Accept);
    webhook_ok(&api, &admin, endpoint, json!({"type": "EnableWebhook"})).await;
    let replayed = webhook_ok(&api, &admin, endpoint, redeliver).await;
    assert_eq!(replayed["requeued"], 2);
    eventually("the replayed deliveries", || async {
        (receiver.accepted().len() == 2).then_some(())
    })
    .await;
    let streams = accepted_by_aggregate(&receiver);
    assert_eq!(
        streams[&first.to_string()],
        vec![
            (1, "AccountOpened".into()),
            (2, "AccountTierChanged".into())
        ]
    );
    assert!(receiver.received().iter().all(|r| verifies(&secret, r)));

    // A rotated secret signs what is sent next; the old one no longer verifies.
    let rotated = webhook_ok(
        &api,
        &admin,
        endpoint,
        json!({"type": "RotateWebhookSecret"}),
    )
    .await;
    let new_secret = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, secret);
    account_with_changes(&api, &admin, 0).await;
    eventually("the delivery after rotation", || async {
        (receiver.accepted().len() == 3).then_some(())
    })
    .await;
    let last = receiver.accepted().pop().unwrap();
    assert!(verifies(&new_secret, &last) && !verifies(&secret, &last));

    // What the worker did, as /metrics counts it: one delivery parked (the rest were parked
    // with it), three delivered, every attempt timed.
    let scrape = eventually("the delivered count in /metrics", || async {
        let text = reqwest::get(format!("http://{metrics}/metrics"))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.contains("b2b_webhook_deliveries_total{outcome=\"delivered\"} 3")
            .then_some(text)
    })
    .await;
    assert!(
        scrape.contains("b2b_webhook_deliveries_total{outcome=\"parked\"} 1"),
        "{scrape}"
    );
    assert!(scrape.contains("b2b_webhook_deliveries_total{outcome=\"failed\"}"));
    assert!(scrape.contains("b2b_webhook_delivery_duration_seconds_count"));

    // Changed to one event type: an account's opening no longer arrives, its tier change does.
    let change = json!({"type": "ChangeWebhook", "event_types": ["AccountTierChanged"]});
    webhook_ok(&api, &admin, endpoint, change).await;
    let changed = account_with_changes(&api, &admin, 1).await;
    eventually("the tier change", || async {
        (receiver.accepted().len() == 4).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let streams = accepted_by_aggregate(&receiver);
    assert_eq!(
        streams[&changed.to_string()],
        vec![(2, "AccountTierChanged".into())]
    );
    assert_eq!(receiver.accepted().len(), 4);
}

#[tokio::test]
async fn a_process_killed_mid_delivery_sends_it_again() {
    let stack = TestStack::new().await;
    let tenant = stack.create_tenant("hooks-kill").await;
    let mut env = fast_retries();
    // A lease of 2 × 1.5 s.
    env.push(("WEBHOOK_TIMEOUT_MS", "1500"));
    let server = stack.spawn_with_env(&["serve"], &env).await;
    let api = Api::new(&server);
    let admin = api.login(&tenant).await;
    let receiver = Receiver::new(Mode::Hang);
    receiver.start();
    let (_, secret) = register(&api, &admin, &receiver.url(), &["AccountOpened"]).await;
    // Another endpoint is not held up by the hanging one.
    let prompt = Receiver::new(Mode::Accept);
    prompt.start();
    register(&api, &admin, &prompt.url(), &["AccountOpened"]).await;
    account_with_changes(&api, &admin, 0).await;
    eventually("the delivery in flight", || async {
        (!receiver.received().is_empty()).then_some(())
    })
    .await;
    eventually("the other endpoint's delivery", || async {
        (prompt.accepted().len() == 1).then_some(())
    })
    .await;
    assert!(receiver.accepted().is_empty());
    server.kill().await;
    receiver.set_mode(Mode::Accept);
    let _restarted = stack.spawn_with_env(&["serve"], &env).await;
    eventually("the delivery sent again", || async {
        (!receiver.accepted().is_empty()).then_some(())
    })
    .await;
    let received = receiver.received();
    assert_eq!(
        received[0].id,
        receiver.accepted()[0].id,
        "the same webhook-id"
    );
    assert!(received.iter().all(|r| verifies(&secret, r)));
    eventually("both recorded as delivered", || async {
        let delivered = "select count(*) from webhook_deliveries where status = 'delivered'";
        (count(&stack, delivered).await == 2).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_url_outside_the_rule_is_refused_with_422_and_nothing_is_stored() {
    let stack = TestStack::new().await;
    let tenant = stack.create_tenant("hooks-url").await;
    // A production deployment: https and public addresses only.
    let server = stack
        .spawn_with_env(
            &["command-api"],
            &[
                ("APP_ENV", "production"),
                ("B2B_CLOCK", "system"),
                ("JWT_SECRET", TEST_JWT_SECRET),
            ],
        )
        .await;
    let api = Api::new(&server);
    let admin = api.login(&tenant).await;
    for url in [
        "http://example.com/hook",
        "https://127.0.0.1/hook",
        "https://[::1]/hook",
        "https://10.1.2.3/hook",
        "https://169.254.169.254/latest",
        "https://localhost/hook",
        "https://user:pw@example.com/hook",
        "ftp://example.com/hook",
        "not a url",
    ] {
        let response = webhook_command(
            &api,
            &admin,
            Uuid::new_v4(),
            json!({"type": "RegisterWebhook", "url": url, "event_types": ["*"]}),
        )
        .await;
        let body = problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert!(
            body["type"]
                .as_str()
                .unwrap()
                .ends_with("webhook_url_not_allowed"),
            "{url}: {body}"
        );
    }
    // Other bad input, and a caller who is not a TenantAdmin.
    let bad_types = webhook_command(
        &api,
        &admin,
        Uuid::new_v4(),
        json!({"type": "RegisterWebhook", "url": "https://1.1.1.1/", "event_types": []}),
    )
    .await;
    problem(bad_types, StatusCode::BAD_REQUEST).await;
    api.register(&admin, "viewer@hooks.test", json!(["Viewer"]), None)
        .await;
    let viewer = api.sign_in(&tenant, "viewer@hooks.test").await;
    let forbidden = webhook_command(
        &api,
        viewer["access_token"].as_str().unwrap(),
        Uuid::new_v4(),
        json!({"type": "RegisterWebhook", "url": "https://1.1.1.1/", "event_types": ["*"]}),
    )
    .await;
    problem(forbidden, StatusCode::FORBIDDEN).await;
    let missing = webhook_command(
        &api,
        &admin,
        Uuid::new_v4(),
        json!({"type": "DisableWebhook"}),
    )
    .await;
    problem(missing, StatusCode::NOT_FOUND).await;
    assert_eq!(
        count(&stack, "select count(*) from webhook_endpoints").await,
        0
    );

    // A public literal address is accepted; the answer's secret is the only copy given out.
    let (id, _) = register(&api, &admin, "https://1.1.1.1/hook", &["QuoteSubmitted"]).await;
    let again = webhook_command(
        &api,
        &admin,
        id,
        json!({"type": "RegisterWebhook", "url": "https://1.1.1.1/", "event_types": ["*"]}),
    )
    .await;
    let body = problem(again, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(
        body["type"].as_str().unwrap().ends_with("webhook_exists"),
        "{body}"
    );
    let change = webhook_command(
        &api,
        &admin,
        id,
        json!({"type": "ChangeWebhook", "url": "https://192.168.0.1/"}),
    )
    .await;
    problem(change, StatusCode::UNPROCESSABLE_ENTITY).await;
    let stored: (String, Vec<String>) =
        sqlx::query_as("select url, event_types from webhook_endpoints")
            .fetch_one(&stack.db)
            .await
            .unwrap();
    assert_eq!(
        stored,
        ("https://1.1.1.1/hook".into(), vec!["QuoteSubmitted".into()])
    );
    webhook_ok(&api, &admin, id, json!({"type": "DeleteWebhook"})).await;
    assert_eq!(
        count(&stack, "select count(*) from webhook_endpoints").await,
        0
    );
}

/// Measures events/s delivered to one webhook receiver by the delivery worker (a debug build:
/// `cargo test --test api webhooks::measure -- --ignored --nocapture`). The deliveries are
/// recorded straight into the table for 200 aggregates × 10 events, so the figure is the
/// worker's, not the command API's.
#[tokio::test]
#[ignore]
async fn measure_deliveries_per_second_to_one_receiver() {
    let stack = TestStack::new().await;
    let tenant = stack.create_tenant("hooks-bench").await;
    let server = stack
        .spawn_with_env(&["serve"], &[("WEBHOOK_POLL_MS", "20")])
        .await;
    let api = Api::new(&server);
    let admin = api.login(&tenant).await;
    let receiver = Receiver::new(Mode::Accept);
    receiver.start();
    let (endpoint, _) = register(&api, &admin, &receiver.url(), &["Nothing"]).await;
    let (aggregates, per_aggregate) = (200_i64, 10_i64);
    let total = usize::try_from(aggregates * per_aggregate).unwrap();
    let started = Instant::now();
    sqlx::query(
        "insert into webhook_deliveries (id, tenant_id, endpoint_id, global_position, \
                aggregate_type, aggregate_id, sequence, event_type, body, next_attempt_at) \
         select gen_random_uuid(), $1, $2, a * 100 + s, 'Account', 'a' || a, s, 'Bench', \
                '{\"type\":\"Bench\",\"data\":{}}', now() \
           from generate_series(1, $3) a, generate_series(1, $4) s",
    )
    .bind(tenant.id)
    .bind(endpoint)
    .bind(aggregates)
    .bind(per_aggregate)
    .execute(&stack.db)
    .await
    .unwrap();
    let unique = || {
        let ids: HashSet<String> = receiver.accepted().into_iter().map(|r| r.id).collect();
        ids.len()
    };
    eventually_within("every delivery", Duration::from_secs(600), || async {
        (unique() >= total).then_some(())
    })
    .await;
    let seconds = started.elapsed().as_secs_f64();
    let duplicates = receiver.accepted().len() - unique();
    println!(
        "webhooks: {total} deliveries to one receiver in {seconds:.2} s: {:.0} events/s \
         (debug build; {duplicates} sent twice)",
        total as f64 / seconds
    );
}

#[tokio::test]
async fn bodies_are_stored_sealed_sent_revealed_and_a_retry_after_forgetting_sends_them_erased() {
    let stack = TestStack::new().await;
    let tenant = stack.create_tenant("hooks-forget").await;
    let server = stack.spawn_with_env(&["serve"], &fast_retries()).await;
    let api = Api::new(&server);
    let admin = api.login(&tenant).await;
    let receiver = Receiver::new(Mode::Accept);
    receiver.start();
    let (_, secret) = register(&api, &admin, &receiver.url(), &["UserRegistered"]).await;
    let kept = api
        .register(&admin, "kept.person@hooks.test", json!(["Viewer"]), None)
        .await;
    let sent = eventually("the first registration sent", || async {
        receiver.accepted().into_iter().next()
    })
    .await;
    assert!(verifies(&secret, &sent), "signed as sent");
    let body: Value = serde_json::from_str(&sent.body).unwrap();
    assert_eq!(body["data"]["aggregate_id"], json!(kept.to_string()));
    assert_eq!(
        body["data"]["payload"]["UserRegistered"]["email"],
        "kept.person@hooks.test"
    );
    let stored_plain = "select count(*) from webhook_deliveries where body like '%@hooks.test%'";
    assert_eq!(count(&stack, stored_plain).await, 0, "recorded sealed");

    // The next one fails at first; its person is forgotten before the retry succeeds.
    receiver.set_mode(Mode::Fail);
    let gone = api
        .register(&admin, "gone.person@hooks.test", json!(["Viewer"]), None)
        .await;
    let failed = eventually("a failed attempt of the second", || async {
        receiver
            .received()
            .into_iter()
            .find(|r| r.answered == Mode::Fail)
    })
    .await;
    assert!(
        failed.body.contains("gone.person@hooks.test"),
        "{}",
        failed.body
    );
    api.ok_in(&admin, "users", gone, json!({"type": "ForgetUser"}))
        .await;
    receiver.set_mode(Mode::Accept);
    let retried = eventually("the retry after forgetting", || async {
        receiver.accepted().into_iter().nth(1)
    })
    .await;
    assert!(verifies(&secret, &retried), "signed as sent");
    let body: Value = serde_json::from_str(&retried.body).unwrap();
    assert_eq!(body["data"]["aggregate_id"], json!(gone.to_string()));
    let registered = &body["data"]["payload"]["UserRegistered"];
    assert_eq!(registered["email"], "[erased]");
    assert_eq!(registered["display_name"], "[erased]");
    assert_eq!(retried.id, failed.id, "the same delivery, sent again");
}
