//! The process as its supervisor sees it: an orderly stop on SIGTERM under load, a worker that
//! dies ending the process by name, startup errors that name the server, and a `--help` that
//! lists the configuration.
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::AsyncReadExt;
use uuid::Uuid;

use crate::helpers::{eventually, open_account, Api, Process, TestStack};

fn sigterm(process: &Process) {
    let pid = process.child.id().expect("running").to_string();
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(sent.success());
}

/// Sends OpenAccount commands until the server stops answering; returns the ids it
/// acknowledged (200).
async fn send_until_refused(api: Arc<Api>, token: String, acknowledged: Arc<Mutex<Vec<Uuid>>>) {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(30) {
        let id = Uuid::new_v4();
        let sent = api
            .command(&token, "accounts", id)
            .json(&open_account("Stopping Ltd"))
            .send()
            .await;
        match sent {
            Ok(response) if response.status() == StatusCode::OK => {
                acknowledged.lock().unwrap().push(id);
            }
            Ok(response) => panic!("unexpected {}", response.status()),
            // Refused or cut off once the server stopped: never acknowledged.
            Err(_) => return,
        }
    }
}

/// SIGTERM while clients send commands: the process keeps serving through the drain, then
/// finishes what is in flight and exits 0 within 10 s; every acknowledged command is stored,
/// and a fresh process publishes and projects all of them (nothing the stopped one took from
/// its queues was lost).
#[tokio::test]
async fn sigterm_under_load_keeps_every_acknowledged_command_and_exits_0_within_10_s() {
    let stack = TestStack::new().await;
    let tenant = stack.create_tenant("stopping").await;
    let mut server = stack.spawn(&["serve"]).await;
    let api = Arc::new(Api::new(&server));
    let token = api.login(&tenant).await;
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let clients: Vec<_> = (0..6)
        .map(|_| {
            let (api, token, acked) = (api.clone(), token.clone(), acknowledged.clone());
            tokio::spawn(send_until_refused(api, token, acked))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before_signal = acknowledged.lock().unwrap().len();
    assert!(before_signal > 0, "the load was running");
    sigterm(&server);
    let signalled = Instant::now();
    let status = tokio::time::timeout(Duration::from_secs(15), server.child.wait())
        .await
        .expect("the process stopped")
        .unwrap();
    let stopped_after = signalled.elapsed();
    for client in clients {
        client.await.unwrap();
    }
    assert!(status.success(), "exited with {status}");
    assert!(stopped_after < Duration::from_secs(10), "{stopped_after:?}");
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(
        acknowledged.len() > before_signal,
        "commands were still acknowledged during the drain"
    );
    let ids: Vec<String> = acknowledged.iter().map(Uuid::to_string).collect();
    let stored: i64 = sqlx::query_scalar(
        "select count(distinct aggregate_id) from events \
          where aggregate_type = 'Account' and aggregate_id = any($1)",
    )
    .bind(&ids)
    .fetch_one(&stack.db)
    .await
    .unwrap();
    assert_eq!(stored, acknowledged.len() as i64);
    let _again = stack.spawn(&["serve"]).await;
    let ids: Vec<Uuid> = acknowledged.clone();
    eventually("every acknowledged account projected", || async {
        let projected: i64 =
            sqlx::query_scalar("select count(*) from read.accounts where id = any($1)")
                .bind(&ids)
                .fetch_one(&stack.db)
                .await
                .unwrap();
        (projected == ids.len() as i64).then_some(())
    })
    .await;
    eprintln!(
        "SIGTERM under load: {} commands acknowledged ({} after the signal), exit 0 after {:?}",
        acknowledged.len(),
        acknowledged.len() - before_signal,
        stopped_after
    );
}

/// Reads what the process wrote to stderr, once it has exited.
async fn stderr_of(process: &mut Process) -> String {
    let mut text = String::new();
    if let Some(mut stderr) = process.child.stderr.take() {
        stderr.read_to_string(&mut text).await.unwrap();
    }
    text
}

/// A worker that panics fails readiness at once, naming it, and then ends the process with a
/// non-zero exit naming it; for a worker-only process too.
#[tokio::test]
async fn a_worker_that_panics_fails_readiness_and_ends_the_process_naming_it() {
    let stack = TestStack::new().await;
    let mut command = stack.command(&["serve"]);
    command
        .env("B2B_TEST_FAULTS", "1")
        .env("B2B_TEST_PANIC_WORKER", "timer worker")
        .env("SHUTDOWN_DRAIN_MS", "3000")
        .stderr(Stdio::piped());
    let mut server = stack.spawn_command(command).await;
    let ready = format!("{}/health/ready", server.url());
    let response = reqwest::get(&ready).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "ready before the panic");
    let body: Value = eventually("readiness failing", || async {
        let response = reqwest::get(&ready).await.ok()?;
        (response.status() == StatusCode::SERVICE_UNAVAILABLE)
            .then_some(response.json::<Value>().await.unwrap())
    })
    .await;
    let why = body["stopping"].as_str().unwrap_or_default();
    assert!(
        why.contains("timer worker") && why.contains("panicked"),
        "{body}"
    );
    let status = tokio::time::timeout(Duration::from_secs(15), server.child.wait())
        .await
        .expect("the process ended")
        .unwrap();
    assert!(!status.success(), "exited with {status}");
    let stderr = stderr_of(&mut server).await;
    assert!(stderr.contains("the timer worker panicked"), "{stderr}");

    let mut command = stack.command(&["projector"]);
    command
        .env("B2B_TEST_FAULTS", "1")
        .env("B2B_TEST_PANIC_WORKER", "read-model projector")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = command.spawn().unwrap();
    let output = tokio::time::timeout(Duration::from_secs(15), async {
        let mut text = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut text)
            .await
            .unwrap();
        (child.wait().await.unwrap(), text)
    })
    .await
    .expect("the projector ended");
    assert!(!output.0.success(), "exited with {}", output.0);
    assert!(
        output.1.contains("the read-model projector panicked"),
        "{}",
        output.1
    );
}

/// `b2b <args>` with `variable` replaced: (succeeded, stderr, how long it took).
async fn run_with(
    stack: &TestStack,
    args: &[&str],
    variable: &str,
    value: &str,
) -> (bool, String, Duration) {
    let started = Instant::now();
    let output = stack
        .command(args)
        .env(variable, value)
        .output()
        .await
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
        started.elapsed(),
    )
}

/// A dead database, a wrong password or a dead broker: the process exits non-zero within
/// seconds, naming the server's address and the cause.
#[tokio::test]
async fn startup_errors_name_the_server_and_the_cause_within_seconds() {
    let stack = TestStack::new().await;
    let mut wrong_password = reqwest::Url::parse(&stack.database.url).unwrap();
    wrong_password
        .set_password(Some("not-the-password"))
        .unwrap();
    let port = wrong_password.port().unwrap_or(5432);
    let cases = [
        (
            &["migrate"][..],
            "DATABASE_OWNER_URL",
            "postgres://b2b:b2b@127.0.0.1:1/b2b".to_owned(),
            "cannot connect to Postgres at 127.0.0.1:1: connection refused".to_owned(),
        ),
        (
            &["migrate"][..],
            "DATABASE_OWNER_URL",
            wrong_password.to_string(),
            format!("cannot connect to Postgres at 127.0.0.1:{port}: login as "),
        ),
        (
            &["relay"][..],
            "AMQP_URL",
            "amqp://b2b:b2b@127.0.0.1:1/%2f".to_owned(),
            "cannot connect to RabbitMQ at 127.0.0.1:1: connection refused".to_owned(),
        ),
    ];
    for (args, variable, value, expected) in cases {
        let (succeeded, stderr, took) = run_with(&stack, args, variable, &value).await;
        assert!(!succeeded, "{args:?} with {variable}={value} succeeded");
        assert!(stderr.contains(&expected), "{expected} not in {stderr}");
        assert!(!stderr.contains("not-the-password"), "{stderr}");
        assert!(took < Duration::from_secs(5), "{args:?} took {took:?}");
    }
}

/// Every variable the README's configuration table documents is listed by `b2b serve --help`,
/// with the default the README gives.
#[tokio::test]
async fn help_lists_every_documented_variable_with_its_default() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let table = readme
        .split("## Configuration")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_b2b"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(output.stdout).unwrap();
    let mut checked = 0;
    for row in table.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = row.split(" | ").collect();
        let names: Vec<&str> = cells[0]
            .split('`')
            .skip(1)
            .step_by(2)
            .filter(|name| {
                name.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            })
            .collect();
        for name in &names {
            assert!(
                help.contains(&format!("[env: {name}")),
                "{name} missing from --help"
            );
            checked += 1;
        }
        // A row of one variable whose default is a literal: --help states the same one.
        let default = cells[1].split('`').nth(1);
        if let (&[name], Some(default)) = (&names[..], default) {
            let line = help
                .split("\n      --")
                .find(|entry| entry.contains(&format!("[env: {name}")))
                .unwrap();
            assert!(
                line.contains(&format!("[default: {default}]")),
                "{name}: {line}"
            );
        }
    }
    assert!(
        checked >= 30,
        "only {checked} variables in the README table"
    );
}
