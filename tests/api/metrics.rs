//! `/metrics`: what a command, a sign-in and the workers behind them move, read by parsing the
//! Prometheus text as a scraper would.
use reqwest::StatusCode;
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{eventually, open_account, Api, TestStack};

/// The sum of the samples of `name` whose labels include every one of `labels` (0 when none).
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
            let matches = metric == name
                && labels
                    .iter()
                    .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
            matches.then(|| value.parse::<f64>().unwrap())
        })
        .sum()
}

async fn scrape(address: &str) -> String {
    let response = reqwest::get(format!("http://{address}/metrics"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.text().await.unwrap()
}

const COMMAND_ROUTE: &str = "/api/v1/{collection}/{id}";

#[tokio::test]
async fn a_command_and_a_sign_in_move_the_counters_and_the_workers_report_lag_and_leadership() {
    let stack = TestStack::new().await;
    let tenant = stack.create_tenant("metered").await;
    let (server, address) = stack.spawn_serve_with_metrics().await;
    let api = Api::new(&server);
    let token = api.login(&tenant).await;
    let refused = api
        .login_as(&tenant, &tenant.email, "not the password")
        .await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let before = scrape(&address).await;
    let opened = [
        ("aggregate_type", "Account"),
        ("command", "OpenAccount"),
        ("outcome", "ok"),
    ];
    let posted = [
        ("method", "POST"),
        ("route", COMMAND_ROUTE),
        ("status", "200"),
    ];
    api.ok(&token, Uuid::new_v4(), open_account("Metered GmbH"))
        .await;
    // A refused command counts as refused, under its own name.
    let refused = api
        .command(&token, "accounts", Uuid::new_v4())
        .json(&json!({ "type": "SuspendAccount", "reason": "never opened" }))
        .send()
        .await
        .unwrap();
    assert!(refused.status().is_client_error(), "{}", refused.status());
    let after = scrape(&address).await;

    let moved = |name: &str, labels: &[(&str, &str)]| {
        sample(&after, name, labels) - sample(&before, name, labels)
    };
    assert_eq!(moved("b2b_commands_total", &opened), 1.0, "{after}");
    let suspended = [("aggregate_type", "Account"), ("command", "SuspendAccount")];
    assert_eq!(moved("b2b_commands_total", &suspended), 1.0, "{after}");
    assert_eq!(
        sample(
            &after,
            "b2b_commands_total",
            &[("command", "SuspendAccount"), ("outcome", "ok")]
        ),
        0.0
    );
    let account = [("aggregate_type", "Account")];
    assert_eq!(moved("b2b_events_appended_total", &account), 1.0);
    assert_eq!(moved("b2b_http_requests_total", &posted), 1.0);
    assert_eq!(
        moved("b2b_http_request_duration_seconds_count", &posted),
        1.0
    );
    assert!(sample(&after, "b2b_http_request_duration_seconds_bucket", &posted) > 0.0);
    let login = [("route", "/api/v1/auth/login"), ("status", "401")];
    assert_eq!(sample(&after, "b2b_http_requests_total", &login), 1.0);
    assert_eq!(
        sample(&after, "b2b_sign_ins_total", &[("outcome", "ok")]),
        1.0
    );
    let wrong = [("outcome", "invalid_credentials")];
    assert_eq!(sample(&after, "b2b_sign_ins_total", &wrong), 1.0);
    assert!(after.contains("# TYPE b2b_http_request_duration_seconds histogram"));

    // The workers: this process leads the relay, publishes, and the projector catches up.
    let accounts = [("group", "read-models"), ("projection", "accounts")];
    let caught_up = eventually("the accounts projection caught up", || async {
        let text = scrape(&address).await;
        let published = sample(&text, "b2b_relay_published_total", &[]) >= 2.0;
        let has_lag = text.contains("b2b_projection_lag_events{");
        let lag = sample(&text, "b2b_projection_lag_events", &accounts);
        // A lag not reported yet reads as 0: wait for the account event to be applied too.
        let applied = sample(&text, "b2b_projection_events_applied_total", &accounts) >= 1.0;
        (published && has_lag && lag == 0.0 && applied).then_some(text)
    })
    .await;
    assert_eq!(sample(&caught_up, "b2b_relay_leader", &[]), 1.0);
    assert_eq!(sample(&caught_up, "b2b_events_unpublished", &[]), 0.0);
    assert!(sample(&caught_up, "b2b_events_stored_position", &[]) >= 2.0);
    let lag_seconds = sample(&caught_up, "b2b_projection_lag_seconds", &accounts);
    assert!((0.0..30.0).contains(&lag_seconds), "{lag_seconds}");
    let read_models = [("group", "read-models")];
    assert!(sample(&caught_up, "b2b_projector_batch_size_count", &read_models) >= 1.0);
    assert!(sample(&caught_up, "b2b_projection_events_applied_total", &accounts) >= 1.0);
}

/// `b2b_…` metric names in `text`, with a histogram's `_bucket`, `_count` and `_sum` series
/// named by their histogram.
fn metric_names(text: &str) -> std::collections::BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| word.starts_with("b2b_") && word.len() > 4)
        .map(|word| {
            ["_bucket", "_count", "_sum"]
                .iter()
                .find_map(|suffix| word.strip_suffix(suffix))
                .unwrap_or(word)
                .to_owned()
        })
        .collect()
}

fn documented_metrics() -> std::collections::BTreeSet<String> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let table = readme
        .lines()
        .filter(|line| line.starts_with("| `b2b_"))
        .map(|line| line.split(" | ").next().unwrap())
        .collect::<Vec<_>>()
        .join(" ");
    metric_names(&table)
}

/// The Grafana dashboard queries only metrics the README documents, and a scrape of a running
/// process exports only documented ones.
#[tokio::test]
async fn the_dashboard_and_the_scrape_use_only_documented_metrics() {
    let documented = documented_metrics();
    assert!(documented.len() >= 15, "{documented:?}");
    let dashboard = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/grafana/b2b.json"
    ))
    .unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&dashboard).unwrap();
    let panels = dashboard["panels"].as_array().unwrap();
    let exprs: Vec<&str> = panels
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap())
        .map(|t| t["expr"].as_str().unwrap())
        .collect();
    let queried = metric_names(&exprs.join(" "));
    assert!(queried.len() >= 12, "{queried:?}");
    let undocumented: Vec<_> = queried.difference(&documented).collect();
    assert!(undocumented.is_empty(), "{undocumented:?}");

    let stack = TestStack::new().await;
    let (_server, address) = stack.spawn_serve_with_metrics().await;
    let text = scrape(&address).await;
    let exported: Vec<String> = text
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|line| line.split(' ').next())
        .map(str::to_owned)
        .collect();
    assert!(!exported.is_empty(), "{text}");
    for name in exported {
        assert!(documented.contains(&name), "{name} is not in the README");
    }
}
