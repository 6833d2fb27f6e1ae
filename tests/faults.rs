//! Fault injection, in a test binary of its own: `rabbitmqctl close_all_connections` closes
//! every connection on the broker and a Postgres restart every connection to the database, so
//! nothing else may run beside it (cargo runs test binaries one after another) and its tests
//! take turns (`SERIAL`).
use std::collections::HashMap;
use std::time::Duration;

use futures::StreamExt;
use serde_json::json;
use uuid::Uuid;

#[path = "api/helpers.rs"]
mod helpers;

use helpers::{eventually_within, open_account, Api, TestStack};

/// The faults here reach every test running beside them: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const ACCOUNTS: usize = 50;
const COMMANDS: usize = 500;

/// rabbitmqctl against the local stack's node. Each command here is idempotent, and on a
/// loaded machine the CLI can time out reaching the node: a few tries before failing.
async fn rabbitmqctl(args: &[&str]) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/local/stack.sh");
    let mut failures = Vec::new();
    for _ in 0..3 {
        let output = tokio::process::Command::new("bash")
            .arg(script)
            .arg("rabbitmqctl")
            .args(args)
            .output()
            .await
            .unwrap();
        if output.status.success() {
            return String::from_utf8(output.stdout).unwrap();
        }
        failures.push(String::from_utf8_lossy(&output.stderr).into_owned());
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    panic!("rabbitmqctl {args:?} failed: {failures:?}");
}

/// The local stack's script, for what the faults need of it.
async fn stack_script(args: &[&str]) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/local/stack.sh");
    let status = tokio::process::Command::new("bash")
        .arg(script)
        .args(args)
        .status()
        .await
        .unwrap();
    assert!(status.success(), "stack.sh {args:?}");
}

#[tokio::test]
async fn killed_workers_dropped_connections_and_a_broker_restart_lose_nothing_and_apply_nothing_twice(
) {
    let _serial = SERIAL.lock().await;
    let stack = TestStack::new().await;
    let tenant = stack.create_tenant("chaos").await;
    let commands = stack.spawn(&["command-api"]).await;
    let mut relay = stack.spawn(&["relay"]).await;
    let mut projector = stack.spawn(&["projector"]).await;
    let api = Api::new(&commands);
    let token = api.login(&tenant).await;
    let ids: Vec<Uuid> = (0..ACCOUNTS).map(|_| Uuid::new_v4()).collect();
    for (n, id) in ids.iter().enumerate() {
        api.ok(&token, *id, open_account(&format!("account-{n}")))
            .await;
    }

    let sender = {
        let (api, token, ids) = (
            Api {
                base_url: api.base_url.clone(),
                http: api.http.clone(),
            },
            token.clone(),
            ids.clone(),
        );
        tokio::spawn(async move {
            futures::stream::iter(ACCOUNTS..COMMANDS)
                .map(|n| {
                    let id = ids[n % ACCOUNTS];
                    let body = if n % 2 == 0 {
                        json!({"type": "UpdateAccountDetails", "name": format!("name-{n}")})
                    } else {
                        json!({"type": "SetApiQuota", "requests_per_minute": n})
                    };
                    let (api, token) = (&api, &token);
                    async move { api.ok(token, id, body).await }
                })
                .buffer_unordered(8)
                .count()
                .await
        })
    };

    for round in 0..3 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        relay.kill().await;
        projector.kill().await;
        rabbitmqctl(&["close_all_connections", "fault injection"]).await;
        tokio::time::sleep(Duration::from_millis(200 * round)).await;
        relay = stack.spawn(&["relay"]).await;
        projector = stack.spawn(&["projector"]).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        rabbitmqctl(&["close_all_connections", "fault injection"]).await;
    }
    // A broker restart while the workers run: they must reconnect on their own.
    rabbitmqctl(&["stop_app"]).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    rabbitmqctl(&["start_app"]).await;
    assert_eq!(sender.await.unwrap(), COMMANDS - ACCOUNTS);
    assert_eq!(stack.account_event_count().await, COMMANDS as i64);

    stack.wait_for_relay(Duration::from_secs(60)).await;
    wait_until_projected(&stack, Duration::from_secs(60)).await;
    assert_read_model_matches_event_store(&stack).await;
    let parked = rabbitmqctl(&[
        "list_queues",
        "name",
        "messages",
        "--quiet",
        "--no-table-headers",
    ])
    .await;
    let parked_line = parked
        .lines()
        .find(|line| line.starts_with(&format!("{}.read-models.parked", stack.amqp_prefix)))
        .unwrap_or_else(|| panic!("no parked queue in {parked}"));
    assert_eq!(
        parked_line.split_whitespace().nth(1),
        Some("0"),
        "{parked_line}"
    );
    drop(projector);
    drop(relay);
}

async fn wait_until_projected(stack: &TestStack, limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let behind: i64 = sqlx::query_scalar(
            "select count(*) from (select aggregate_id, max(sequence) as last from events \
             where aggregate_type = 'Account' group by aggregate_id) e \
             left join read.accounts a on a.id::text = e.aggregate_id \
             where a.version is distinct from e.last",
        )
        .fetch_one(&stack.db)
        .await
        .unwrap();
        if behind == 0 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{behind} accounts never caught up"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn assert_read_model_matches_event_store(stack: &TestStack) {
    let expected: HashMap<String, (String, Option<i32>, i64)> = sqlx::query_as::<_, (String, String, Option<i32>, i64)>(
        "select aggregate_id, \
           (array_agg(coalesce(payload->'AccountDetailsUpdated'->>'name', payload->'AccountOpened'->>'name') order by sequence desc) \
              filter (where event_type in ('AccountOpened', 'AccountDetailsUpdated')))[1], \
           ((array_agg(payload->'ApiQuotaSet'->>'requests_per_minute' order by sequence desc) \
              filter (where event_type = 'ApiQuotaSet'))[1])::int, \
           max(sequence) \
         from events where aggregate_type = 'Account' group by aggregate_id",
    )
    .fetch_all(&stack.db)
    .await
    .unwrap()
    .into_iter()
    .map(|(id, name, quota, version)| (id, (name, quota, version)))
    .collect();
    let actual: HashMap<String, (String, Option<i32>, i64)> =
        sqlx::query_as::<_, (String, String, Option<i32>, i64)>(
            "select id::text, name, api_quota_per_minute, version from read.accounts",
        )
        .fetch_all(&stack.db)
        .await
        .unwrap()
        .into_iter()
        .map(|(id, name, quota, version)| (id, (name, quota, version)))
        .collect();
    assert_eq!(actual.len(), ACCOUNTS);
    assert_eq!(actual, expected);
    let checkpoints_off: i64 = sqlx::query_scalar(
        "select count(*) from projection_checkpoints c join read.accounts a on a.id::text = c.aggregate_id \
         where c.last_sequence <> a.version",
    )
    .fetch_one(&stack.db)
    .await
    .unwrap();
    assert_eq!(checkpoints_off, 0);
}

/// Opens `ACCOUNTS` accounts and returns their ids.
async fn open_accounts(api: &Api, token: &str) -> Vec<Uuid> {
    let ids: Vec<Uuid> = (0..ACCOUNTS).map(|_| Uuid::new_v4()).collect();
    for (n, id) in ids.iter().enumerate() {
        api.ok(token, *id, open_account(&format!("account-{n}")))
            .await;
    }
    ids
}

/// What one keyed command met on its way: the correlation ids of the attempts answered with a
/// 5xx (each attempt has its own), and the reply that finally came.
struct Delivery {
    refused_attempts: Vec<Uuid>,
    version: u64,
}

/// Sends one keyed command until it is answered 200, as a client that keeps its key would.
async fn deliver(
    api: &Api,
    token: &str,
    id: Uuid,
    key: &str,
    body: &serde_json::Value,
) -> Delivery {
    let mut refused_attempts = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{key} never succeeded"
        );
        let attempt = Uuid::new_v4();
        let sent = api
            .command(token, "accounts", id)
            .header("Idempotency-Key", key)
            .header("X-Correlation-Id", attempt.to_string())
            .json(body)
            .send()
            .await;
        match sent {
            Ok(response) if response.status().is_success() => {
                let reply: serde_json::Value = response.json().await.unwrap();
                let version = reply["version"].as_u64().unwrap();
                return Delivery {
                    refused_attempts,
                    version,
                };
            }
            Ok(response) if response.status().is_server_error() => refused_attempts.push(attempt),
            Ok(response) => panic!("{key}: unexpected {}", response.status()),
            // No answer at all: the outcome is unknown to the client, which retries.
            Err(_) => {}
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_postgres_restart_during_keyed_commands_applies_each_once_and_5xx_means_nothing_stored() {
    const KEYED: usize = 240;
    let _serial = SERIAL.lock().await;
    let stack = TestStack::new().await;
    let tenant = stack.create_tenant("pg-restart").await;
    let server = stack.spawn(&["command-api"]).await;
    let api = Api::new(&server);
    let token = api.login(&tenant).await;
    let ids = open_accounts(&api, &token).await;

    let sending = futures::stream::iter(0..KEYED)
        .map(|n| {
            let (api, token, id) = (&api, &token, ids[n % ACCOUNTS]);
            async move {
                let body = json!({"type": "UpdateAccountDetails", "name": format!("keyed-{n}")});
                (n, deliver(api, token, id, &format!("key-{n}"), &body).await)
            }
        })
        .buffer_unordered(6)
        .collect::<Vec<_>>();
    let restart = async {
        tokio::time::sleep(Duration::from_millis(400)).await;
        stack_script(&["pg-restart"]).await;
    };
    let (deliveries, ()) = tokio::join!(sending, restart);

    let stored: Vec<(String, i64, Option<String>, String)> = sqlx::query_as(
        "select aggregate_id, sequence, payload -> 'AccountDetailsUpdated' ->> 'name', \
                metadata ->> 'correlation_id' \
           from events where aggregate_type = 'Account' order by aggregate_id, sequence",
    )
    .fetch_all(&stack.db)
    .await
    .unwrap();
    let refused: std::collections::HashSet<String> = deliveries
        .iter()
        .flat_map(|(_, d)| d.refused_attempts.iter().map(Uuid::to_string))
        .collect();
    assert!(
        stored
            .iter()
            .all(|(_, _, _, correlation)| !refused.contains(correlation)),
        "an attempt answered with a 5xx had stored its events"
    );
    for (n, delivery) in &deliveries {
        let name = format!("keyed-{n}");
        let id = ids[n % ACCOUNTS].to_string();
        let mine: Vec<_> = stored
            .iter()
            .filter(|(_, _, stored_name, _)| stored_name.as_deref() == Some(name.as_str()))
            .collect();
        assert_eq!(mine.len(), 1, "{name} stored {} times", mine.len());
        assert_eq!((&mine[0].0, mine[0].1), (&id, delivery.version as i64));
    }
    assert_eq!(stored.len(), ACCOUNTS + KEYED);
    let refused_count = deliveries
        .iter()
        .filter(|(_, d)| !d.refused_attempts.is_empty())
        .count();
    println!("{refused_count} of {KEYED} commands met a 5xx during the restart");
}

fn signal(process: &helpers::Process, name: &str) {
    let pid = process.child.id().expect("a running process").to_string();
    let status = std::process::Command::new("kill")
        .args([&format!("-{name}"), &pid])
        .status()
        .unwrap();
    assert!(status.success());
}

async fn relay_leader(stack: &TestStack) -> Option<Uuid> {
    sqlx::query_scalar("select leader from relay_state where lease_until > now()")
        .fetch_one(&stack.db)
        .await
        .ok()
        .flatten()
}

#[tokio::test]
async fn a_paused_relay_loses_its_lease_to_the_standby_and_nothing_is_lost() {
    let _serial = SERIAL.lock().await;
    let stack = TestStack::new().await;
    let tenant = stack.create_tenant("paused-relay").await;
    let commands = stack.spawn(&["command-api"]).await;
    let projector = stack.spawn(&["projector"]).await;
    let first = stack.spawn(&["relay"]).await;
    let leader = eventually_within("a relay to lead", Duration::from_secs(30), || {
        relay_leader(&stack)
    })
    .await;
    let standby = stack.spawn(&["relay"]).await;
    let api = Api::new(&commands);
    let token = api.login(&tenant).await;
    let ids = open_accounts(&api, &token).await;
    wait_until_projected(&stack, Duration::from_secs(60)).await;

    signal(&first, "STOP");
    let paused_at = tokio::time::Instant::now();
    let send = |from: usize, to: usize| {
        let (api, token, ids) = (&api, &token, &ids);
        futures::stream::iter(from..to)
            .map(move |n| {
                let body = json!({"type": "UpdateAccountDetails", "name": format!("name-{n}")});
                async move { api.ok(token, ids[n % ACCOUNTS], body).await }
            })
            .buffer_unordered(8)
            .count()
    };
    assert_eq!(send(0, 200).await, 200);
    let successor = eventually_within(
        "the standby to take over",
        Duration::from_secs(10),
        || async { relay_leader(&stack).await.filter(|l| *l != leader) },
    )
    .await;
    println!(
        "the standby took over {:.1} s after the leader was paused",
        paused_at.elapsed().as_secs_f64()
    );
    wait_until_projected(&stack, Duration::from_secs(60)).await;

    // The old leader wakes: it must notice it lost the lease and publish nothing more.
    signal(&first, "CONT");
    assert_eq!(send(200, 400).await, 200);
    stack.wait_for_relay(Duration::from_secs(60)).await;
    wait_until_projected(&stack, Duration::from_secs(60)).await;
    assert_read_model_matches_event_store(&stack).await;
    assert_eq!(relay_leader(&stack).await, Some(successor));
    drop((first, standby, projector));
}
