//! GraphQL subscriptions over `graphql-transport-ws` (`GET /graphql/ws`), with a real WebSocket
//! client against `b2b serve`: a command's change arrives with its version, nothing of another
//! tenant or another Partner's account does, a resumed subscription misses nothing, a revoked
//! session is cut off, bad tokens are refused, and the caps hold.
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use uuid::Uuid;

use crate::helpers::{open_account, problem, Api, Process, TestStack};

const QUOTE_FIELDS: &str = "kind aggregateId version cursor reason pendingForMe \
    quote { id accountId title version lines { sku quantity } } \
    approval { id status version } contract { id streamVersion }";

/// A graphql-transport-ws client.
struct Client {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Client {
    /// Connects and sends `connection_init` with `payload`, without waiting for the answer.
    async fn open(server: &Process, payload: Value) -> Self {
        let mut client = Self::silent(server).await;
        client
            .send(json!({"type": "connection_init", "payload": payload}))
            .await;
        client
    }

    /// Connects without sending anything.
    async fn silent(server: &Process) -> Self {
        let url = format!("{}/graphql/ws", server.url().replace("http://", "ws://"));
        let mut request = url.into_client_request().unwrap();
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static("graphql-transport-ws"),
        );
        let (socket, response) = tokio_tungstenite::connect_async(request).await.unwrap();
        assert_eq!(
            response.headers()["sec-websocket-protocol"],
            "graphql-transport-ws"
        );
        Self { socket }
    }

    /// Connects as the bearer of `token` and waits for `connection_ack`.
    async fn connect(server: &Process, token: &str) -> Self {
        let mut client = Self::open(server, json!({ "token": token })).await;
        let ack = client.next(Duration::from_secs(10)).await.expect("an ack");
        assert_eq!(ack["type"], "connection_ack", "{ack}");
        client
    }

    async fn send(&mut self, message: Value) {
        self.socket
            .send(Message::text(message.to_string()))
            .await
            .unwrap();
    }

    async fn subscribe(&mut self, id: &str, query: &str) {
        let message = json!({"id": id, "type": "subscribe", "payload": {"query": query}});
        self.send(message).await;
    }

    /// The next protocol message within `limit`; None when nothing came (or the socket closed).
    async fn next(&mut self, limit: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .ok()??;
            match frame.ok()? {
                Message::Text(text) => {
                    let message: Value = serde_json::from_str(&text).unwrap();
                    if message["type"] == "ping" {
                        self.send(json!({"type": "pong"})).await;
                        continue;
                    }
                    return Some(message);
                }
                Message::Close(_) => return None,
                _ => continue,
            }
        }
    }

    /// The next `next` message's `data`, failing on anything else.
    async fn change(&mut self) -> Value {
        let message = self
            .next(Duration::from_secs(15))
            .await
            .expect("a change within 15 s");
        assert_eq!(message["type"], "next", "{message}");
        assert!(message["payload"]["errors"].is_null(), "{message}");
        message["payload"]["data"].clone()
    }

    /// Waits for the server to close the socket; its close code and reason.
    async fn closed(&mut self, limit: Duration) -> (u16, String) {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .expect("the server closes the connection in time");
            match frame {
                Some(Ok(Message::Close(Some(close)))) => {
                    return (u16::from(close.code), close.reason.to_string())
                }
                Some(Ok(Message::Close(None))) | None | Some(Err(_)) => {
                    panic!("closed without a code")
                }
                Some(Ok(_)) => continue,
            }
        }
    }
}

struct World {
    stack: TestStack,
    server: Process,
    api: Api,
    admin: String,
    tenant: crate::helpers::Tenant,
}

async fn world(env: &[(&str, &str)]) -> World {
    let stack = TestStack::new().await;
    let tenant = stack.create_tenant("subs").await;
    let server = stack.spawn_with_env(&["serve"], env).await;
    let api = Api::new(&server);
    let admin = api.login(&tenant).await;
    World {
        stack,
        server,
        api,
        admin,
        tenant,
    }
}

impl World {
    async fn account(&self, name: &str) -> Uuid {
        let id = Uuid::new_v4();
        self.api.ok(&self.admin, id, open_account(name)).await;
        id
    }

    async fn draft_quote(&self, account: Uuid, title: &str) -> Uuid {
        let id = Uuid::new_v4();
        let valid_until = (chrono::Utc::now() + chrono::Duration::days(30)).to_rfc3339();
        let draft = json!({"type": "DraftQuote", "account_id": account, "title": title,
            "valid_until": valid_until});
        self.api.ok_in(&self.admin, "quotes", id, draft).await;
        id
    }

    async fn add_line(&self, quote: Uuid, sku: &str) -> u64 {
        let line = json!({"type": "AddLineItem", "line_id": Uuid::new_v4(), "sku": sku,
            "description": "Widget", "quantity": "3", "unit_price": "10.00"});
        self.api.ok_in(&self.admin, "quotes", quote, line).await
    }

    /// Waits until the quote's read model shows `version` (read-your-writes).
    async fn projected(&self, quote: Uuid, version: u64) {
        let query = format!("{{ quote(id: \"{quote}\") {{ version }} }}");
        let body = self
            .api
            .graphql(&self.admin, &query, Some((quote, version)))
            .await;
        assert_eq!(body["data"]["quote"]["version"], json!(version), "{body}");
    }
}

fn changes(kinds: &str) -> String {
    format!("subscription {{ changes{kinds} {{ {QUOTE_FIELDS} }} }}")
}

#[tokio::test]
async fn a_command_s_change_arrives_with_its_version_and_nothing_of_another_tenant() {
    let w = world(&[]).await;
    let other_tenant = w.stack.create_tenant("other").await;
    let other_admin = w.api.login(&other_tenant).await;
    let mut mine = Client::connect(&w.server, &w.admin).await;
    mine.subscribe("1", &changes("(kinds: [QUOTE])")).await;
    let mut theirs = Client::connect(&w.server, &other_admin).await;
    theirs.subscribe("1", &changes("")).await;

    let account = w.account("Initech").await;
    let quote = w.draft_quote(account, "Widgets").await;
    let drafted = mine.change().await["changes"].clone();
    assert_eq!(drafted["kind"], "QUOTE");
    assert_eq!(drafted["aggregateId"], json!(quote.to_string()));
    assert_eq!(drafted["version"], 1);
    assert_eq!(drafted["quote"]["title"], "Widgets");
    assert_eq!(drafted["quote"]["lines"], json!([]));
    assert!(drafted["cursor"].is_string(), "{drafted}");

    let version = w.add_line(quote, "W-1").await;
    let lined = mine.change().await["changes"].clone();
    assert_eq!(lined["version"], json!(version));
    assert_eq!(lined["quote"]["version"], json!(version));
    assert_eq!(
        lined["quote"]["lines"],
        json!([{"sku": "W-1", "quantity": "3"}])
    );

    // The other tenant's subscriber, following everything, heard none of it.
    assert_eq!(theirs.next(Duration::from_secs(1)).await, None);
}

#[tokio::test]
async fn a_partner_sees_only_their_own_account_s_changes() {
    let w = world(&[]).await;
    let theirs = w.account("Theirs").await;
    let others = w.account("Others").await;
    w.api
        .register(
            &w.admin,
            "partner@subs.test",
            json!(["Partner"]),
            Some(theirs),
        )
        .await;
    let partner = w.api.sign_in(&w.tenant, "partner@subs.test").await;
    let token = partner["access_token"].as_str().unwrap();
    let mut client = Client::connect(&w.server, token).await;
    client.subscribe("p", &changes("")).await;

    let hidden = w.draft_quote(others, "Not yours").await;
    w.projected(hidden, 1).await;
    let shown = w.draft_quote(theirs, "Yours").await;
    let change = client.change().await["changes"].clone();
    assert_eq!(change["aggregateId"], json!(shown.to_string()), "{change}");
    assert_eq!(change["quote"]["accountId"], json!(theirs.to_string()));
    assert_eq!(client.next(Duration::from_secs(1)).await, None);
}

#[tokio::test]
async fn a_resumed_subscription_gets_what_it_missed() {
    let w = world(&[]).await;
    let account = w.account("Initech").await;
    let mut client = Client::connect(&w.server, &w.admin).await;
    client.subscribe("1", &changes("(kinds: [QUOTE])")).await;
    let first = w.draft_quote(account, "First").await;
    let seen = client.change().await["changes"].clone();
    assert_eq!(seen["version"], 1);
    let cursor = seen["cursor"].as_str().unwrap().to_owned();
    drop(client);

    // While disconnected: the quote moves on twice and a second one appears.
    w.add_line(first, "A").await;
    let last = w.add_line(first, "B").await;
    let second = w.draft_quote(account, "Second").await;
    w.projected(first, last).await;
    w.projected(second, 1).await;

    let mut client = Client::connect(&w.server, &w.admin).await;
    let query = format!(
        "subscription {{ changes(kinds: [QUOTE], resumeAfter: \"{cursor}\") {{ {QUOTE_FIELDS} }} }}"
    );
    client.subscribe("1", &query).await;
    let mut latest = std::collections::HashMap::new();
    while let Some(message) = client.next(Duration::from_secs(2)).await {
        let change = &message["payload"]["data"]["changes"];
        assert_eq!(change["kind"], "QUOTE", "{message}");
        let id = change["aggregateId"].as_str().unwrap().to_owned();
        latest.insert(id, change["version"].as_u64().unwrap());
    }
    assert_eq!(latest[&first.to_string()], last);
    assert_eq!(latest[&second.to_string()], 1);

    // And it goes on live.
    let version = w.add_line(second, "C").await;
    let live = client.change().await["changes"].clone();
    assert_eq!(live["aggregateId"], json!(second.to_string()));
    assert_eq!(live["version"], json!(version));
}

#[tokio::test]
async fn a_resume_cursor_the_server_cannot_honour_is_answered_with_resync() {
    let w = world(&[]).await;
    let mut client = Client::connect(&w.server, &w.admin).await;
    let old = (chrono::Utc::now() - chrono::Duration::days(2)).timestamp_micros();
    let query = format!("subscription {{ changes(resumeAfter: \"{old}\") {{ {QUOTE_FIELDS} }} }}");
    client.subscribe("1", &query).await;
    let change = client.change().await["changes"].clone();
    assert_eq!(change["kind"], "RESYNC");
    assert_eq!(change["reason"], "the resume cursor is too old");
    assert!(change["aggregateId"].is_null());
}

#[tokio::test]
async fn a_revoked_session_is_cut_off_at_once() {
    let w = world(&[]).await;
    let session = w.api.sign_in(&w.tenant, &w.tenant.email).await;
    let token = session["access_token"].as_str().unwrap();
    let mut client = Client::connect(&w.server, token).await;
    client.subscribe("1", &changes("")).await;
    let logout = w
        .api
        .http
        .post(format!("{}/api/v1/auth/logout", w.api.base_url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    let started = Instant::now();
    let (code, reason) = client.closed(Duration::from_secs(5)).await;
    assert_eq!(code, 4403);
    assert_eq!(reason, "the session or API key was revoked");
    assert!(started.elapsed() < Duration::from_secs(2));
    // And the token no longer opens a connection.
    let mut again = Client::open(&w.server, json!({ "token": token })).await;
    assert_eq!(again.closed(Duration::from_secs(5)).await.0, 4403);
}

#[tokio::test]
async fn missing_or_bad_tokens_and_plain_requests_are_refused() {
    let w = world(&[]).await;
    for payload in [
        json!({}),
        json!({"token": "not-a-token"}),
        json!({"token": "b2bk_x"}),
    ] {
        let mut client = Client::open(&w.server, payload.clone()).await;
        let (code, reason) = client.closed(Duration::from_secs(5)).await;
        assert_eq!(code, 4403, "{payload}");
        assert!(reason.starts_with("UNAUTHENTICATED"), "{payload}: {reason}");
    }
    // A request that is no graphql-transport-ws upgrade is a problem, not a socket.
    let plain = w
        .api
        .http
        .get(format!("{}/graphql/ws", w.api.base_url))
        .send()
        .await
        .unwrap();
    let body = problem(plain, StatusCode::BAD_REQUEST).await;
    assert!(body["detail"]
        .as_str()
        .unwrap()
        .contains("graphql-transport-ws"));
    // Subscriptions are not served over POST /graphql.
    let body = w.api.graphql(&w.admin, &changes(""), None).await;
    assert!(body["errors"][0]["message"].is_string(), "{body}");
}

#[tokio::test]
async fn the_per_user_cap_refuses_one_subscription_too_many() {
    let w = world(&[("SUBSCRIPTIONS_PER_USER", "2")]).await;
    let mut first = Client::connect(&w.server, &w.admin).await;
    first.subscribe("1", &changes("")).await;
    first.subscribe("2", &changes("")).await;
    // The protocol acknowledges no subscription: give the server a moment to register them.
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Another connection of the same user shares the cap.
    let mut second = Client::connect(&w.server, &w.admin).await;
    second.subscribe("3", &changes("")).await;
    let refused = second.next(Duration::from_secs(5)).await.unwrap();
    let text = refused.to_string();
    assert!(text.contains("at most 2 subscriptions per user"), "{text}");
    assert!(text.contains("TOO_MANY_REQUESTS"), "{text}");
    // Completing one frees a place.
    first.send(json!({"id": "1", "type": "complete"})).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    second.subscribe("4", &changes("(kinds: [QUOTE])")).await;
    let account = w.account("Initech").await;
    let quote = w.draft_quote(account, "After").await;
    loop {
        let message = second
            .next(Duration::from_secs(15))
            .await
            .expect("a change");
        if message["id"] == "4" {
            let change = &message["payload"]["data"]["changes"];
            assert_eq!(change["aggregateId"], json!(quote.to_string()), "{message}");
            break;
        }
    }
}

/// Registers a user of `w`'s tenant with `roles` and an approval limit; their access token.
async fn member(w: &World, email: &str, roles: Value, limit: Option<&str>) -> String {
    let id = w.api.register(&w.admin, email, roles, None).await;
    if let Some(amount) = limit {
        let body = json!({"type": "SetApprovalLimit", "amount": amount, "currency": "EUR"});
        w.api.ok_in(&w.admin, "users", id, body).await;
    }
    let session = w.api.sign_in(&w.tenant, email).await;
    session["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn pending_for_me_tells_an_approver_when_a_request_enters_and_leaves_their_list() {
    let w = world(&[]).await;
    let manager = member(
        &w,
        "manager@subs.test",
        json!(["Manager"]),
        Some("50000.00"),
    )
    .await;
    let operator = member(&w, "ops@subs.test", json!(["Operator"]), None).await;
    let fields = "kind aggregateId version pendingForMe approval { status currentLevel subjectId }";
    let query = format!("subscription {{ pendingForMe {{ {fields} }} }}");
    let mut approver = Client::connect(&w.server, &manager).await;
    approver.subscribe("1", &query).await;
    let mut bystander = Client::connect(&w.server, &operator).await;
    bystander.subscribe("1", &query).await;

    // 20,000: above the threshold, so a Manager decides level 1 and a TenantAdmin level 2.
    let account = w.account("Initech").await;
    let quote = w.draft_quote(account, "Big").await;
    let line = json!({"type": "AddLineItem", "line_id": Uuid::new_v4(), "sku": "BIG",
        "description": "Big", "quantity": "1", "unit_price": "20000.00"});
    w.api.ok_in(&w.admin, "quotes", quote, line).await;
    w.api
        .ok_in(&w.admin, "quotes", quote, json!({"type": "SubmitQuote"}))
        .await;

    let entered = approver.change().await["pendingForMe"].clone();
    assert_eq!(entered["kind"], "APPROVAL", "{entered}");
    assert_eq!(entered["pendingForMe"], true);
    assert_eq!(entered["approval"]["status"], "PENDING");
    assert_eq!(entered["approval"]["currentLevel"], 1);
    assert_eq!(entered["approval"]["subjectId"], json!(quote.to_string()));
    let approval: Uuid = entered["aggregateId"].as_str().unwrap().parse().unwrap();

    let version = w
        .api
        .ok_in(
            &manager,
            "approvals",
            approval,
            json!({"type": "ApproveLevel"}),
        )
        .await;
    let left = approver.change().await["pendingForMe"].clone();
    assert_eq!(left["aggregateId"], json!(approval.to_string()));
    assert_eq!(left["version"], json!(version));
    assert_eq!(left["pendingForMe"], false);
    assert_eq!(left["approval"]["currentLevel"], 2);
    // An Operator approves nothing: their list never had it.
    assert_eq!(bystander.next(Duration::from_secs(1)).await, None);
}

#[tokio::test]
async fn a_revoked_api_key_and_a_deactivated_user_are_cut_off() {
    let w = world(&[]).await;
    let key_id = Uuid::new_v4();
    let created = w
        .api
        .http
        .post(format!("{}/api/v1/api-keys/{key_id}", w.api.base_url))
        .bearer_auth(&w.admin)
        .json(
            &json!({"type": "CreateApiKey", "name": "erp", "roles": ["Viewer"],
            "expires_at": (chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339()}),
        )
        .send()
        .await
        .unwrap();
    let created: Value = created.json().await.unwrap();
    let secret = created["secret"]
        .as_str()
        .expect("the key's secret")
        .to_owned();
    let mut machine = Client::connect(&w.server, &secret).await;
    machine.subscribe("1", &changes("")).await;
    let viewer_id = w
        .api
        .register(&w.admin, "viewer@subs.test", json!(["Viewer"]), None)
        .await;
    let viewer = w.api.sign_in(&w.tenant, "viewer@subs.test").await;
    let header =
        json!({"Authorization": format!("Bearer {}", viewer["access_token"].as_str().unwrap())});
    let mut person = Client::open(&w.server, header).await;
    assert_eq!(
        person.next(Duration::from_secs(5)).await.unwrap()["type"],
        "connection_ack"
    );
    person.subscribe("1", &changes("")).await;

    let revoke = json!({"type": "RevokeApiKey"});
    let revoked = w
        .api
        .http
        .post(format!("{}/api/v1/api-keys/{key_id}", w.api.base_url))
        .bearer_auth(&w.admin)
        .json(&revoke)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::OK);
    assert_eq!(machine.closed(Duration::from_secs(5)).await.0, 4403);

    let deactivate = json!({"type": "DeactivateUser", "reason": "left"});
    w.api.ok_in(&w.admin, "users", viewer_id, deactivate).await;
    let (code, reason) = person.closed(Duration::from_secs(5)).await;
    assert_eq!(code, 4403);
    assert!(reason.contains("deactivated"), "{reason}");
}

/// The server's resident memory, in KiB.
fn rss_kib(server: &Process) -> u64 {
    let pid = server.child.id().expect("the server runs");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Figures for the README (debug build, the shared local stack): the memory each idle
/// subscription costs the server with 1,000 idle subscriptions (one connection each), and how
/// many changes per second reach 10 active ones. `cargo test --test api subscription_figures
/// -- --ignored --nocapture`.
#[tokio::test]
#[ignore = "a measurement: prints figures, asserts only that everything arrived"]
async fn subscription_figures() {
    const IDLE: usize = 1000;
    const ACTIVE: usize = 10;
    const QUOTES: usize = 10;
    const LINES: usize = 20;
    let w = world(&[("SUBSCRIPTIONS_PER_USER", "2000")]).await;
    let account = w.account("Initech").await;
    // Warm the server (connection pools, first GraphQL execution) before the baseline.
    let mut warm = Client::connect(&w.server, &w.admin).await;
    warm.subscribe("w", &changes("(kinds: [QUOTE])")).await;
    let warm_quote = w.draft_quote(account, "Warm-up").await;
    warm.change().await;
    w.projected(warm_quote, 1).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = rss_kib(&w.server);
    let mut idle = Vec::with_capacity(IDLE);
    for n in 0..IDLE {
        let mut client = Client::connect(&w.server, &w.admin).await;
        client
            .subscribe(&n.to_string(), &changes("(kinds: [CONTRACT])"))
            .await;
        idle.push(client);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss_kib(&w.server);
    let per_idle = (after.saturating_sub(before) as f64 * 1024.0) / IDLE as f64;

    let mut active = Vec::with_capacity(ACTIVE);
    for n in 0..ACTIVE {
        let mut client = Client::connect(&w.server, &w.admin).await;
        client
            .subscribe(&n.to_string(), &changes("(kinds: [QUOTE])"))
            .await;
        active.push(client);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    let writers = (0..QUOTES).map(|n| {
        let w = &w;
        async move {
            let quote = w.draft_quote(account, &format!("Load {n}")).await;
            let mut last = 1;
            for l in 0..LINES {
                last = w.add_line(quote, &format!("L-{l}")).await;
            }
            (quote, last)
        }
    });
    let written: Vec<(Uuid, u64)> = futures::future::join_all(writers).await;
    let wrote_in = started.elapsed();
    let events = QUOTES * (LINES + 1);
    let readers = active.iter_mut().map(|client| {
        let written = &written;
        async move {
            let mut latest = std::collections::HashMap::new();
            let mut messages = 0usize;
            while written.iter().any(|(q, v)| latest.get(q) != Some(v)) {
                let data = client.change().await;
                let change = &data["changes"];
                let id: Uuid = change["aggregateId"].as_str().unwrap().parse().unwrap();
                latest.insert(id, change["version"].as_u64().unwrap());
                messages += 1;
            }
            messages
        }
    });
    let delivered: usize = futures::future::join_all(readers).await.into_iter().sum();
    let all_in = started.elapsed();
    println!(
        "subscriptions: {IDLE} idle (one connection each) cost {} KiB of server memory: \
         {per_idle:.0} bytes per idle subscription (RSS {before} -> {after} KiB)",
        after.saturating_sub(before)
    );
    println!(
        "subscriptions: {events} events written in {:.2} s ({:.0} events/s by {QUOTES} writers); \
         {ACTIVE} active subscribers had every final version after {:.2} s: {delivered} messages \
         ({:.0} messages/s, {:.0} events/s covered per subscriber)",
        wrote_in.as_secs_f64(),
        events as f64 / wrote_in.as_secs_f64(),
        all_in.as_secs_f64(),
        delivered as f64 / all_in.as_secs_f64(),
        events as f64 / all_in.as_secs_f64(),
    );
    // The idle ones heard nothing of the quotes.
    for client in idle.iter_mut().take(5) {
        assert_eq!(client.next(Duration::from_millis(50)).await, None);
    }
}

#[tokio::test]
async fn active_subscriptions_are_a_metric() {
    let stack = TestStack::new().await;
    let tenant = stack.create_tenant("gauge").await;
    let (server, metrics) = stack.spawn_serve_with_metrics().await;
    let api = Api::new(&server);
    let admin = api.login(&tenant).await;
    let mut client = Client::connect(&server, &admin).await;
    client.subscribe("1", &changes("")).await;
    client.subscribe("2", &changes("(kinds: [QUOTE])")).await;
    let gauge = |text: &str| {
        text.lines()
            .find(|l| l.starts_with("b2b_subscriptions_active "))
            .map(str::to_owned)
    };
    let url = format!("http://{metrics}/metrics");
    let line = crate::helpers::eventually("the gauge at 2", || async {
        let text = api.http.get(&url).send().await.ok()?.text().await.ok()?;
        gauge(&text).filter(|l| l == "b2b_subscriptions_active 2")
    })
    .await;
    assert_eq!(line, "b2b_subscriptions_active 2");
    client.send(json!({"id": "1", "type": "complete"})).await;
    crate::helpers::eventually("the gauge at 1", || async {
        let text = api.http.get(&url).send().await.ok()?.text().await.ok()?;
        gauge(&text).filter(|l| l == "b2b_subscriptions_active 1")
    })
    .await;
}

#[tokio::test]
async fn contract_changes_arrive_with_the_stream_version_and_the_contract_versions() {
    let w = world(&[]).await;
    let account = w.account("Initech").await;
    let mut client = Client::connect(&w.server, &w.admin).await;
    let query = "subscription { changes(kinds: [CONTRACT]) { kind aggregateId version \
                 contract { title version streamVersion versions { version terms } } } }";
    client.subscribe("c", query).await;
    let contract = Uuid::new_v4();
    let draft = json!({"type": "DraftContract", "account_id": account, "title": "Support",
        "value": "1200.00", "currency": "EUR", "start_date": "2030-01-01",
        "end_date": "2031-01-01", "terms": "Net 30"});
    w.api.ok_in(&w.admin, "contracts", contract, draft).await;
    let drafted = client.change().await["changes"].clone();
    assert_eq!(drafted["kind"], "CONTRACT");
    assert_eq!(drafted["aggregateId"], json!(contract.to_string()));
    assert_eq!(drafted["version"], 1);
    assert_eq!(drafted["contract"]["title"], "Support");
    let amend = json!({"type": "AmendContract", "terms": "Net 45"});
    let version = w.api.ok_in(&w.admin, "contracts", contract, amend).await;
    let amended = client.change().await["changes"].clone();
    assert_eq!(amended["version"], json!(version));
    assert_eq!(amended["contract"]["streamVersion"], json!(version));
    // The contract's own version counts amendments; the message's counts the stream.
    assert_eq!(amended["contract"]["version"], 2);
    let terms: Vec<&str> = amended["contract"]["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["terms"].as_str().unwrap())
        .collect();
    assert_eq!(terms, ["Net 30", "Net 45"]);
}

#[tokio::test]
async fn a_connection_that_never_initialises_is_closed_after_10_s() {
    let w = world(&[]).await;
    let mut client = Client::silent(&w.server).await;
    let started = Instant::now();
    let (code, reason) = client.closed(Duration::from_secs(15)).await;
    assert_eq!(code, 4408);
    assert_eq!(reason, "connection initialisation timeout");
    assert!(
        started.elapsed() >= Duration::from_secs(9),
        "{:?}",
        started.elapsed()
    );
}
