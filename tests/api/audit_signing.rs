//! Who signs checkpoints and with what key, and history hashed before chain version 2.
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::json;
use uuid::Uuid;

use crate::audit::{chain_breaks, tamper};
use crate::helpers::{eventually, open_account, Api, TestStack};

async fn checkpoints(stack: &TestStack) -> Vec<(String, i64)> {
    sqlx::query_as(
        "select t.slug, max(c.number) from audit_checkpoints c join tenants t on t.id = c.tenant_id \
          group by t.slug order by t.slug",
    )
    .fetch_all(&stack.db)
    .await
    .unwrap()
}

#[tokio::test]
async fn the_relay_signs_each_tenants_new_history_on_its_interval() {
    let stack = TestStack::new().await;
    stack.create_tenant("acme").await;
    let _relay = stack
        .spawn_with_env(&["relay"], &[("AUDIT_CHECKPOINT_SECONDS", "1")])
        .await;
    eventually("acme's first checkpoint", || async {
        (checkpoints(&stack).await == [("acme".to_owned(), 1)]).then_some(())
    })
    .await;
    stack.create_tenant("later").await;
    eventually("a checkpoint of the new tenant", || async {
        let signed = checkpoints(&stack).await;
        (signed == [("acme".to_owned(), 1), ("later".to_owned(), 1)]).then_some(())
    })
    .await;
    let (ok, stdout, stderr) = stack.b2b(&["audit", "verify"]).await;
    assert!(ok, "{stdout}{stderr}");
    assert!(
        stdout.contains("tenant acme: checkpoint 1 (")
            && stdout.contains("tenant later: checkpoint 1 ("),
        "{stdout}"
    );
}

/// Outside `APP_ENV=local` and `test`, the process that signs checkpoints needs a key of its
/// own: the built-in one is published in the source, so its signatures prove nothing.
#[tokio::test]
async fn the_checkpoint_worker_needs_a_real_key_outside_local_and_test() {
    let stack = TestStack::new().await;
    stack.create_tenant("acme").await;
    let production = |key: Option<&str>| {
        let mut command = stack.command(&["relay"]);
        command
            .env("APP_ENV", "production")
            .env("B2B_CLOCK", "system")
            .env("AUDIT_CHECKPOINT_SECONDS", "1");
        if let Some(key) = key {
            command.env("AUDIT_SIGNING_KEY", key);
        }
        command
    };
    let built_in = STANDARD.encode(b"b2b-local-only-audit-signing-key");
    for (key, says) in [
        (
            None,
            "AUDIT_SIGNING_KEY or AUDIT_SIGNING_KEY_FILE must be set",
        ),
        (Some(built_in.as_str()), "built-in development audit key"),
        (Some("not a key"), "AUDIT_SIGNING_KEY"),
    ] {
        let output = tokio::time::timeout(Duration::from_secs(20), production(key).output())
            .await
            .unwrap_or_else(|_| panic!("{key:?}: the relay started"))
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{key:?}: the relay started");
        assert!(stderr.contains(says), "{key:?}: {stderr}");
    }

    let key = STANDARD.encode([9u8; 32]);
    let mut relay = production(Some(&key));
    let _relay = relay.kill_on_drop(true).spawn().unwrap();
    eventually("a checkpoint signed with the deployment's key", || async {
        (checkpoints(&stack).await.len() == 1).then_some(())
    })
    .await;
    let signer: Vec<u8> = sqlx::query_scalar("select public_key from audit_checkpoints")
        .fetch_one(&stack.db)
        .await
        .unwrap();
    let mut public_key = stack.command(&["audit", "public-key"]);
    let output = public_key
        .env("AUDIT_SIGNING_KEY", &key)
        .output()
        .await
        .unwrap();
    let printed = String::from_utf8(output.stdout).unwrap();
    assert_eq!(STANDARD.encode(signer), printed.trim());
    // The built-in key of a test run did not sign it.
    let (ok, _, stderr) = stack.b2b(&["audit", "verify"]).await;
    assert!(!ok && stderr.contains("signed by another key"), "{stderr}");
    let (ok, stdout, stderr) = stack
        .b2b(&["audit", "verify", "--public-key", printed.trim()])
        .await;
    assert!(ok, "{stdout}{stderr}");
}

#[tokio::test]
async fn a_pem_key_file_as_openssl_writes_it_is_read() {
    let stack = TestStack::new().await;
    // RFC 8410's example key; `openssl genpkey -algorithm ed25519` writes this form.
    let pem = "-----BEGIN PRIVATE KEY-----\n\
               MC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n\
               -----END PRIVATE KEY-----\n";
    let path = std::env::temp_dir().join(format!("b2b-audit-key-{}.pem", Uuid::new_v4()));
    std::fs::write(&path, pem).unwrap();
    let output = stack
        .command(&["audit", "public-key"])
        .env("AUDIT_SIGNING_KEY_FILE", &path)
        .output()
        .await
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(
        String::from_utf8(output.stdout).unwrap().trim(),
        crate::audit::OTHER_PUBLIC_KEY
    );
}

/// A store upgraded from before migration 0022 holds events hashed under chain version 1: they
/// still verify, in the database and in an export (the Rust recomputation of version 1 matches
/// SQL's), and their streams chain on under version 2.
#[tokio::test]
async fn events_hashed_under_chain_version_one_verify_and_their_streams_chain_on() {
    let stack = TestStack::new().await;
    let tenant = stack.create_tenant("ledger").await;
    let server = stack.spawn(&["command-api"]).await;
    let api = Api::new(&server);
    let token = api.login(&tenant).await;
    let id = Uuid::new_v4();
    api.ok(&token, id, open_account("Legacy \"Quoted\" \\ Ltd"))
        .await;
    tamper(
        &stack,
        "update events set chain_version = 1, hash = event_hash(null, aggregate_type, \
         aggregate_id, sequence, event_type, event_version, payload, metadata)",
    )
    .await;
    api.ok(
        &token,
        id,
        json!({"type": "ChangeTier", "tier": "Enterprise"}),
    )
    .await;
    let versions: Vec<i16> = sqlx::query_scalar(
        "select chain_version from events where aggregate_id = $1 order by sequence",
    )
    .bind(id.to_string())
    .fetch_all(&stack.db)
    .await
    .unwrap();
    assert_eq!(versions, [1, 2]);
    assert_eq!(chain_breaks(&stack).await, 0);

    let (ok, stdout, stderr) = stack.b2b(&["audit", "checkpoint"]).await;
    assert!(ok, "{stdout}{stderr}");
    let (ok, stdout, stderr) = stack.b2b(&["audit", "verify"]).await;
    assert!(ok, "{stdout}{stderr}");
    let (ok, export, stderr) = stack.b2b(&["events", "export", "--tenant", "ledger"]).await;
    assert!(ok, "{stderr}");
    let path = std::env::temp_dir().join(format!("b2b-export-{}.ndjson", Uuid::new_v4()));
    std::fs::write(&path, export).unwrap();
    let (_, key, _) = stack.b2b(&["audit", "public-key"]).await;
    let (ok, stdout, stderr) = stack
        .b2b(&[
            "audit",
            "verify-export",
            path.to_str().unwrap(),
            "--public-key",
            key.trim(),
        ])
        .await;
    std::fs::remove_file(&path).unwrap();
    assert!(ok, "{stdout}{stderr}");

    tamper(
        &stack,
        &format!(
            "update events set payload = replace(payload::text, 'Legacy', 'Forged')::json \
              where aggregate_id = '{id}' and sequence = 1"
        ),
    )
    .await;
    let (ok, _, stderr) = stack.b2b(&["audit", "verify"]).await;
    assert!(!ok);
    assert!(
        stderr.contains(&format!("event Account/{id}#1")) && stderr.contains("was altered"),
        "{stderr}"
    );
}
