//! What operators see of a running system beyond `/metrics`: spans exported over OTLP/HTTP (a
//! tiny collector here keeps what it is sent), the rebuild's progress gauges while `b2b
//! projections rebuild` runs, and a readiness probe that does not open a broker connection
//! per request.
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use uuid::Uuid;

use crate::helpers::{eventually, open_account, Api, TestStack};
use crate::trace_context::{open_traced, stored_metadata, CLIENT_SPAN, TRACE_ID};

/// What the collector was sent: (path, body) per request.
type Received = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// An OTLP/HTTP receiver: answers every POST with 200 and keeps (path, body).
struct Collector {
    endpoint: String,
    received: Received,
}

impl Collector {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let received = Arc::new(Mutex::new(Vec::new()));
        let keep = received.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(receive(socket, keep.clone()));
            }
        });
        Self { endpoint, received }
    }

    fn requests(&self) -> Vec<(String, Vec<u8>)> {
        self.received.lock().unwrap().clone()
    }

    /// Every span posted to `/v1/traces`, with its resource's `service.name`.
    fn spans(&self) -> Vec<(String, Span)> {
        let mut spans = Vec::new();
        for (path, body) in self.requests() {
            assert_eq!(path, "/v1/traces");
            let request = ExportTraceServiceRequest::decode(body.as_slice()).expect("protobuf");
            for resource in request.resource_spans {
                let service = resource
                    .resource
                    .iter()
                    .flat_map(|r| &r.attributes)
                    .find(|a| a.key == "service.name")
                    .and_then(|a| a.value.as_ref()?.value.clone());
                let Some(AnyValue::StringValue(service)) = service else {
                    panic!("a resource without service.name");
                };
                for scope in resource.scope_spans {
                    spans.extend(scope.spans.into_iter().map(|s| (service.clone(), s)));
                }
            }
        }
        spans
    }
}

/// HTTP/1.1 requests on one connection, each with a Content-Length body.
async fn receive(socket: TcpStream, keep: Received) {
    let mut reader = BufReader::new(socket);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).await.unwrap_or(0) == 0 {
            return;
        }
        let path = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_owned();
        let mut length = 0;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).await.unwrap_or(0) == 0 {
                return;
            }
            if header == "\r\n" {
                break;
            }
            if let Some(value) = header.to_ascii_lowercase().strip_prefix("content-length:") {
                length = value.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).await.is_err() {
            return;
        }
        keep.lock().unwrap().push((path, body));
        let answer =
            b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n";
        if reader.get_mut().write_all(answer).await.is_err() {
            return;
        }
    }
}

/// `b2b serve` with `env`, exporting every 100 ms rather than every 5 s, its logs discarded.
fn serve_exporting(stack: &TestStack, env: &[(&str, &str)]) -> tokio::process::Command {
    let mut command = stack.command(&["serve"]);
    command.envs(env.iter().copied());
    command
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .env("RUST_LOG", "info")
        .stderr(Stdio::null());
    command
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn spans_are_exported_over_otlp_and_the_projectors_span_joins_the_requests_trace() {
    let stack = TestStack::new().await;
    let tenant = stack.create_tenant("exported").await;
    let collector = Collector::start().await;
    let server = stack
        .spawn_command(serve_exporting(
            &stack,
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", &collector.endpoint),
                ("OTEL_SERVICE_NAME", "b2b-under-test"),
            ],
        ))
        .await;
    let api = Api::new(&server);
    let token = api.login(&tenant).await;
    let id = Uuid::new_v4();
    let (answered, request_span) = open_traced(&api, &token, id, "Exported GmbH").await;

    let (request, projected) = eventually("the request's and the projector's spans", || {
        let spans = collector.spans();
        async move {
            let in_trace = |name: &str| {
                spans
                    .iter()
                    .find(|(_, s)| s.name == name && hex(&s.trace_id) == TRACE_ID)
                    .cloned()
            };
            let projected =
                in_trace("projector.delivery").or_else(|| in_trace("projector.batched"));
            Some((in_trace("http.request")?, projected?))
        }
    })
    .await;
    let (service, request) = request;
    assert_eq!(service, "b2b-under-test");
    // The exported request span is the one the response and the stored event name.
    assert_eq!(hex(&request.span_id), request_span, "{answered}");
    assert_eq!(hex(&request.parent_span_id), CLIENT_SPAN);
    let stored = stored_metadata(&stack, id).await;
    assert_eq!(stored["traceparent"], Value::String(answered.clone()));
    // The projector's span: the same trace, a child of the request's span.
    let (_, projected) = projected;
    assert_eq!(hex(&projected.trace_id), TRACE_ID);
    assert_eq!(hex(&projected.parent_span_id), request_span);
    assert_ne!(projected.span_id, request.span_id);
}

#[tokio::test]
async fn without_an_endpoint_no_span_is_exported() {
    let stack = TestStack::new().await;
    let tenant = stack.create_tenant("unexported").await;
    let collector = Collector::start().await;
    // The exporter library's own variable for the traces' URL: it would be obeyed by an
    // exporter, were one started.
    let traces = format!("{}/v1/traces", collector.endpoint);
    let server = stack
        .spawn_command(serve_exporting(
            &stack,
            &[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &traces)],
        ))
        .await;
    let api = Api::new(&server);
    let token = api.login(&tenant).await;
    api.ok(&token, Uuid::new_v4(), open_account("Quiet GmbH"))
        .await;
    stack.wait_for_relay(Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(collector.requests().is_empty(), "spans were sent");
}

/// A sample of a gauge in Prometheus text, by its name and labels as written.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Account streams (opened, renamed) copied from one written through the API, in one
/// transaction: enough events that the rebuild runs for a while in small batches.
async fn seed_accounts(stack: &TestStack, streams: usize) {
    let ids: Vec<String> = (0..streams).map(|_| Uuid::new_v4().to_string()).collect();
    let mut tx = stack.db.begin().await.unwrap();
    // One statement per sequence: the hash chain's trigger finds a predecessor only once an
    // earlier statement has inserted it.
    for sequence in 1..=2_i64 {
        sqlx::query(
            "insert into events (aggregate_type, aggregate_id, sequence, event_type, \
                 event_version, payload, metadata) \
             select 'Account', s.id, $2, t.event_type, t.event_version, t.payload, t.metadata \
             from unnest($1::text[]) s(id) \
             join (select * from events where aggregate_type = 'Account' and aggregate_id = \
                       (select aggregate_id from events where aggregate_type = 'Account' \
                        order by global_position limit 1)) t \
               on t.sequence = $2",
        )
        .bind(&ids)
        .bind(sequence)
        .execute(&mut *tx)
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn a_running_rebuild_reports_its_progress_as_gauges() {
    let stack = TestStack::new().await;
    let tenant = stack.create_tenant("rebuilt").await;
    let server = stack.spawn(&["serve"]).await;
    let api = Api::new(&server);
    let token = api.login(&tenant).await;
    let template = Uuid::new_v4();
    api.ok(&token, template, open_account("Template")).await;
    api.ok(
        &token,
        template,
        json!({"type": "UpdateAccountDetails", "name": "Renamed"}),
    )
    .await;
    server.kill().await;
    seed_accounts(&stack, 5_000).await;
    let last: i64 = sqlx::query_scalar("select max(global_position) from events")
        .fetch_one(&stack.db)
        .await
        .unwrap();

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut rebuild = stack.command(&["projections", "rebuild", "accounts", "--batch-size", "20"]);
    rebuild
        .env("METRICS_ADDR", format!("127.0.0.1:{port}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut rebuild = rebuild.spawn().unwrap();
    let metrics = format!("http://127.0.0.1:{port}/metrics");
    let series = |name: &str| format!("{name}{{projection=\"accounts\"}}");
    let mut seen = None;
    while rebuild.try_wait().unwrap().is_none() {
        if let Ok(response) = reqwest::get(&metrics).await {
            let text = response.text().await.unwrap();
            let replayed = sample(&text, &series("b2b_rebuild_events_replayed"));
            if replayed.is_some_and(|n| n > 0.0) {
                seen = Some(text);
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let text = seen.expect("a scrape while the rebuild ran showed its progress");
    let replayed = sample(&text, &series("b2b_rebuild_events_replayed")).unwrap();
    let position = sample(&text, &series("b2b_rebuild_position")).unwrap();
    let target = sample(&text, &series("b2b_rebuild_target_position")).unwrap();
    let rate = sample(&text, &series("b2b_rebuild_events_per_second")).unwrap();
    assert!(
        text.contains("# HELP b2b_rebuild_events_replayed"),
        "{text}"
    );
    assert_eq!(target, last as f64, "{text}");
    assert!(position > 0.0 && position <= target, "{text}");
    assert!(replayed <= 10_002.0, "{text}");
    assert!(rate > 0.0, "{text}");
    let output = rebuild.wait_with_output().await.unwrap();
    assert!(output.status.success());
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let applied = report["replayed"].as_u64().unwrap() + report["swapped_tail"].as_u64().unwrap();
    assert_eq!(applied, 10_002, "{report}");
}

/// A fake broker that counts the connections made to it and drops each at once.
async fn counting_listener() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            drop(socket);
        }
    });
    (format!("amqp://b2b:b2b@{address}/%2f"), accepted)
}

#[tokio::test]
async fn readiness_probes_do_not_open_a_broker_connection_each() {
    let stack = TestStack::new().await;
    // An API alone holds no broker connection: it probes, at most once per few seconds.
    let (amqp_url, accepted) = counting_listener().await;
    let mut command = stack.command(&["command-api"]);
    // Its log of each failed probe is expected here.
    command.env("AMQP_URL", &amqp_url).stderr(Stdio::null());
    let api = stack.spawn_command(command).await;
    let ready = format!("{}/health/ready", api.url());
    for _ in 0..10 {
        let response = reqwest::get(&ready).await.unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["postgres"], true, "{body}");
        assert_eq!(body["rabbitmq"], false, "{body}");
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "one probe for ten checks"
    );

    // `serve` goes by its own consumers' and relay's connections.
    let server = stack.spawn(&["serve"]).await;
    let ready = format!("{}/health/ready", server.url());
    let body: Value = eventually("serve ready", || async {
        let response = reqwest::get(&ready).await.ok()?;
        (response.status() == StatusCode::OK).then_some(response.json::<Value>().await.ok()?)
    })
    .await;
    assert_eq!(
        body,
        json!({"postgres": true, "rabbitmq": true, "stopping": null})
    );
}
