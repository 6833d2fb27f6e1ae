//! W3C trace context: a command's `traceparent` is continued by the request's span, stored
//! with its events, and carried by the relay to the projector, whose span joins the trace.
use std::process::Stdio;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use uuid::Uuid;

use crate::helpers::{open_account, Api, TestStack};

pub(crate) const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
pub(crate) const CLIENT_SPAN: &str = "00f067aa0ba902b7";

/// Opens account `id` as a client in trace [`TRACE_ID`] (its span [`CLIENT_SPAN`]): the
/// `traceparent` the reply names, and the request span's id in it.
pub(crate) async fn open_traced(api: &Api, token: &str, id: Uuid, name: &str) -> (String, String) {
    let client = format!("00-{TRACE_ID}-{CLIENT_SPAN}-01");
    let answered = open_with_traceparent(api, token, id, name, &client).await;
    let request_span = answered.split('-').nth(2).unwrap().to_owned();
    (answered, request_span)
}

/// Opens account `id` sending `traceparent`; the `traceparent` the reply names.
async fn open_with_traceparent(
    api: &Api,
    token: &str,
    id: Uuid,
    name: &str,
    traceparent: &str,
) -> String {
    let response = api
        .command(token, "accounts", id)
        .header("traceparent", traceparent)
        .json(&open_account(name))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    response.headers()["traceparent"]
        .to_str()
        .unwrap()
        .to_owned()
}

/// The metadata stored with the first event of stream `id`.
pub(crate) async fn stored_metadata(stack: &TestStack, id: Uuid) -> Value {
    sqlx::query_scalar("select metadata from events where aggregate_id = $1 and sequence = 1")
        .bind(id.to_string())
        .fetch_one(&stack.db)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_commands_trace_runs_from_the_request_through_the_relay_to_the_projector() {
    let stack = TestStack::new().await;
    let tenant = stack.create_tenant("traced").await;
    let mut command = stack.command(&["serve"]);
    // The projector's debug lines carry its delivery span's fields.
    command
        .env("RUST_LOG", "warn,projections=debug")
        .stderr(Stdio::piped());
    let mut server = stack.spawn_command(command).await;
    let stderr = server.child.stderr.take().unwrap();
    let api = Api::new(&server);
    let token = api.login(&tenant).await;
    let id = Uuid::new_v4();
    let (answered, request_span) = open_traced(&api, &token, id, "Traced GmbH").await;
    assert!(
        answered.starts_with(&format!("00-{TRACE_ID}-")),
        "{answered}"
    );
    assert_ne!(
        request_span, CLIENT_SPAN,
        "the request's span is the client's child"
    );

    let stored = stored_metadata(&stack, id).await;
    assert_eq!(
        stored["traceparent"],
        Value::String(answered.clone()),
        "{stored}"
    );

    // The projector's span for the delivery: the same trace, the request's span as parent.
    let mut lines = BufReader::new(stderr).lines();
    let joined = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let Ok(log) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            let span = &log["span"];
            if span["name"] == "projector.delivery" && span["aggregate_id"] == id.to_string() {
                return span.clone();
            }
        }
        panic!("the process ended");
    })
    .await
    .expect("the projector logged the delivery");
    assert_eq!(joined["trace_id"], TRACE_ID, "{joined}");
    assert_eq!(joined["parent_span_id"], request_span.as_str(), "{joined}");
    assert_ne!(joined["span_id"], request_span.as_str(), "{joined}");
}

/// Without a `traceparent` (or with a malformed one) the request starts a trace of its own.
#[tokio::test]
async fn a_request_without_a_valid_traceparent_starts_a_new_trace() {
    let stack = TestStack::new().await;
    let tenant = stack.create_tenant("untraced").await;
    let server = stack.spawn(&["command-api"]).await;
    let api = Api::new(&server);
    let token = api.login(&tenant).await;
    let id = Uuid::new_v4();
    let answered =
        open_with_traceparent(&api, &token, id, "Untraced GmbH", "00-not-a-trace-01").await;
    let parts: Vec<&str> = answered.split('-').collect();
    assert_eq!(parts.len(), 4, "{answered}");
    assert_eq!((parts[0], parts[1].len(), parts[2].len()), ("00", 32, 16));
    let stored = stored_metadata(&stack, id).await;
    assert_eq!(stored["traceparent"], Value::String(answered), "{stored}");
}
