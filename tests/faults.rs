//! Fault injection, in a test binary of its own: `rabbitmqctl close_all_connections` closes
//! every connection on the broker, so nothing else may run beside it (cargo runs test binaries
//! one after another).
use std::collections::HashMap;
use std::time::Duration;

use futures::StreamExt;
use serde_json::json;
use uuid::Uuid;

#[path = "api/helpers.rs"]
mod helpers;

use helpers::{open_account, Api, TestStack};

const ACCOUNTS: usize = 50;
const COMMANDS: usize = 500;

/// rabbitmqctl against the local stack's node.
async fn rabbitmqctl(args: &[&str]) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/local/stack.sh");
    let output = tokio::process::Command::new("bash")
        .arg(script)
        .arg("rabbitmqctl")
        .args(args)
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[tokio::test]
async fn killed_workers_dropped_connections_and_a_broker_restart_lose_nothing_and_apply_nothing_twice(
) {
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

    stack.wait_for_empty_outbox(Duration::from_secs(60)).await;
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
