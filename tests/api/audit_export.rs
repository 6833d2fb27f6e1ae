//! Exports with proofs: `b2b events export` writes the tenant's signed checkpoint and each
//! event's hash, and `b2b audit verify-export` checks the file as an auditor would, offline.
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use uuid::Uuid;

use crate::audit::{ledger, signed_history, OTHER_PUBLIC_KEY};
use crate::helpers::{Api, TestStack};

/// An export written to a file of its own, removed with it.
struct ExportFile(PathBuf);

impl ExportFile {
    fn lines(&self) -> Vec<String> {
        let text = std::fs::read_to_string(&self.0).unwrap();
        text.lines().map(str::to_owned).collect()
    }

    /// The same export with its lines changed by `change`, in a file of its own.
    fn changed(&self, change: impl FnOnce(&mut Vec<String>)) -> ExportFile {
        let mut lines = self.lines();
        change(&mut lines);
        let file = ExportFile(temp_path());
        std::fs::write(&file.0, lines.join("\n") + "\n").unwrap();
        file
    }
}

impl Drop for ExportFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn temp_path() -> PathBuf {
    std::env::temp_dir().join(format!("b2b-export-{}.ndjson", Uuid::new_v4()))
}

async fn export(stack: &TestStack, args: &[&str]) -> ExportFile {
    let mut command = ["events", "export", "--tenant", "ledger"].to_vec();
    command.extend_from_slice(args);
    let (ok, stdout, stderr) = stack.b2b(&command).await;
    assert!(ok, "{stderr}");
    let file = ExportFile(temp_path());
    std::fs::write(&file.0, stdout).unwrap();
    file
}

async fn public_key(stack: &TestStack) -> String {
    let (ok, stdout, stderr) = stack.b2b(&["audit", "public-key"]).await;
    assert!(ok, "{stderr}");
    stdout.trim().to_owned()
}

/// `b2b audit verify-export` as an auditor runs it: no database and no deployment's settings
/// (a production environment without its secrets would refuse any command that read them).
async fn verify_export(stack: &TestStack, file: &Path, key: &str) -> (bool, String, String) {
    let path = file.to_str().unwrap();
    let output = stack
        .command(&["audit", "verify-export", path, "--public-key", key])
        .env_remove("DATABASE_URL")
        .env_remove("WORKER_DATABASE_URL")
        .env_remove("DATABASE_OWNER_URL")
        .env_remove("AMQP_URL")
        .env_remove("JWT_SECRET")
        .env("APP_ENV", "production")
        .output()
        .await
        .unwrap();
    (
        output.status.success(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

async fn refused(stack: &TestStack, file: &ExportFile, key: &str) -> String {
    let (ok, stdout, stderr) = verify_export(stack, &file.0, key).await;
    assert!(!ok, "verify-export passed: {stdout}");
    stderr
}

/// The line of `id`'s event `sequence`.
fn line_of(lines: &[String], id: Uuid, sequence: i64) -> usize {
    lines
        .iter()
        .position(|line| {
            let event: Value = serde_json::from_str(line).unwrap();
            event["aggregate_id"] == json!(id.to_string()) && event["sequence"] == json!(sequence)
        })
        .unwrap()
}

#[tokio::test]
async fn an_export_carries_its_signed_checkpoint_and_verifies_offline() {
    let (stack, ids) = signed_history().await;
    let server = stack.spawn(&["command-api"]).await;
    let api = Api::new(&server);
    let token = api.login(&ledger()).await;
    api.ok(
        &token,
        ids[0],
        json!({"type": "SetApiQuota", "requests_per_minute": 90}),
    )
    .await;

    let file = export(&stack, &[]).await;
    let lines = file.lines();
    assert_eq!(lines.len(), 12, "the proof, then 11 events");
    let proof: Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(proof["checkpoint"]["number"], 1);
    assert_eq!(proof["checkpoint"]["events"], 10);
    assert_eq!(proof["heads"].as_array().unwrap().len(), 4);
    let first: Value = serde_json::from_str(&lines[1]).unwrap();
    assert_eq!(first["chain_version"], 2);
    assert_eq!(first["previous_hash"], Value::Null);
    assert_eq!(first["hash"].as_str().unwrap().len(), 64);

    let key = public_key(&stack).await;
    let (ok, stdout, stderr) = verify_export(&stack, &file.0, &key).await;
    assert!(ok, "{stdout}{stderr}");
    assert!(
        stdout.contains("is intact and complete up to checkpoint 1 (")
            && stdout.contains("10 events in 4 streams match its signed heads; 1 events after it"),
        "{stdout}"
    );

    let accounts = export(&stack, &["--aggregate-type", "Account"]).await;
    let (ok, stdout, stderr) = verify_export(&stack, &accounts.0, &key).await;
    assert!(ok, "{stdout}{stderr}");
    assert!(stdout.contains("9 events in 3 Account streams"), "{stdout}");
}

#[tokio::test]
async fn an_altered_truncated_or_rehashed_export_is_refused() {
    let (stack, ids) = signed_history().await;
    let file = export(&stack, &[]).await;
    let key = public_key(&stack).await;
    let (ok, _, stderr) = verify_export(&stack, &file.0, &key).await;
    assert!(ok, "{stderr}");

    let altered = file.changed(|lines| {
        let line = line_of(lines, ids[0], 2);
        assert!(lines[line].contains("Enterprise"));
        lines[line] = lines[line].replace("Enterprise", "Standard");
    });
    let stderr = refused(&stack, &altered, &key).await;
    assert!(
        stderr.contains(&format!("event Account/{}#2", ids[0])) && stderr.contains("was altered"),
        "{stderr}"
    );

    let truncated = file.changed(|lines| {
        lines.pop();
    });
    let stderr = refused(&stack, &truncated, &key).await;
    assert!(
        stderr.contains(&format!(
            "event Account/{}#3 is missing: the signed checkpoint covers the stream up to #3",
            ids[2]
        )),
        "{stderr}"
    );

    let rehashed = file.changed(|lines| rewrite_and_rehash(lines, ids[0]));
    let stderr = refused(&stack, &rehashed, &key).await;
    assert!(
        stderr.contains(&format!("event Account/{}#3", ids[0]))
            && stderr.contains("does not match the signed checkpoint"),
        "{stderr}"
    );

    let unsigned = file.changed(|lines| {
        lines.remove(0);
    });
    let stderr = refused(&stack, &unsigned, &key).await;
    assert!(
        stderr.contains("its first line is not a signed checkpoint"),
        "{stderr}"
    );

    let stderr = refused(&stack, &file, OTHER_PUBLIC_KEY).await;
    assert!(stderr.contains("signed by another key"), "{stderr}");

    let window = export(&stack, &["--from", "2000-01-01T00:00:00Z"]).await;
    let stderr = refused(&stack, &window, &key).await;
    assert!(stderr.contains("it was cut by time"), "{stderr}");
}

/// Rewrites `id`'s event 2 and recomputes its stream's hashes from there, as a forger of the
/// file would: every line is consistent again, but the signed head is not.
fn rewrite_and_rehash(lines: &mut [String], id: Uuid) {
    let first = line_of(lines, id, 2);
    let mut event: Value = serde_json::from_str(&lines[first]).unwrap();
    let mut previous: Option<event_store::audit::Hash> = event["previous_hash"]
        .as_str()
        .map(|text| hex::decode(text).unwrap().try_into().unwrap());
    for sequence in 2..=3 {
        let line = line_of(lines, id, sequence);
        event = serde_json::from_str(&lines[line]).unwrap();
        if sequence == 2 {
            event["payload"] = json!({"AccountTierChanged": {"from": "Gold", "to": "Standard"}});
        }
        let (payload, metadata) = (event["payload"].to_string(), event["metadata"].to_string());
        let content = event_store::audit::EventContent {
            chain_version: 2,
            tenant_id: event["tenant_id"].as_str().unwrap().parse().unwrap(),
            aggregate_type: "Account",
            aggregate_id: &id.to_string(),
            sequence,
            global_position: event["global_position"].as_i64().unwrap(),
            recorded_at: event["recorded_at"].as_str().unwrap().parse().unwrap(),
            event_type: event["event_type"].as_str().unwrap(),
            event_version: event["event_version"].as_str().unwrap(),
            payload: &payload,
            metadata: &metadata,
        };
        let hash = content.hash(previous.as_ref()).unwrap();
        event["previous_hash"] = json!(previous.map(hex::encode));
        event["hash"] = json!(hex::encode(hash));
        lines[line] = event.to_string();
        previous = Some(hash);
    }
}
