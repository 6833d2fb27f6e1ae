//! Operators' read-model command line on the real binary: `b2b projections status`, `rebuild`
//! under live reads and writes, and `parked ... replay|drop`.
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{eventually, open_account, Api, Process, TestStack};

const READ_MODELS: &str = "read-models";
const PROCESS_MANAGERS: &str = "process-managers";
const READ_MODEL_NAMES: [&str; 5] = ["accounts", "users", "quotes", "approvals", "contracts"];
const ACCOUNTS_QUERY: &str =
    "{ accounts(first: 100) { totalCount edges { node { id name version } } } }";

/// `serve` running for one tenant, with a few accounts (one changed twice) and a quote.
struct Running {
    stack: TestStack,
    _server: Process,
    api: Api,
    token: String,
    accounts: Vec<Uuid>,
}

async fn running(slug: &str) -> Running {
    let stack = TestStack::new().await;
    let tenant = stack.create_tenant(slug).await;
    let server = stack.spawn(&["serve"]).await;
    let api = Api::new(&server);
    let token = api.login(&tenant).await;
    let accounts: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
    for (n, id) in accounts.iter().enumerate() {
        api.ok(&token, *id, open_account(&format!("Acme {n}")))
            .await;
    }
    api.ok(
        &token,
        accounts[0],
        json!({"type": "UpdateAccountDetails", "name": "Acme Europe"}),
    )
    .await;
    api.ok(
        &token,
        accounts[0],
        json!({"type": "ChangeTier", "tier": "Enterprise"}),
    )
    .await;
    let valid_until = (chrono::Utc::now() + chrono::Duration::days(30)).to_rfc3339();
    api.ok_in(
        &token,
        "quotes",
        Uuid::new_v4(),
        json!({"type": "DraftQuote", "account_id": accounts[1], "title": "Rollout",
            "valid_until": valid_until}),
    )
    .await;
    Running {
        stack,
        _server: server,
        api,
        token,
        accounts,
    }
}

/// `b2b projections status --json`, parsed.
async fn status(stack: &TestStack) -> Value {
    let (ok, stdout, stderr) = stack.b2b(&["projections", "status", "--json"]).await;
    assert!(ok, "{stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn group<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["group"] == name)
        .unwrap_or_else(|| panic!("no group {name} in {status}"))
}

fn parked(status: &Value, name: &str) -> u64 {
    group(status, name)["parked"].as_u64().unwrap()
}

fn projection<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["projections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["projection"] == name)
        .unwrap_or_else(|| panic!("no projection {name} in {status}"))
}

/// Nothing left to publish, nothing waiting in a queue, no projection behind the store.
fn caught_up(status: &Value) -> bool {
    status["unpublished_events"] == 0
        && status["groups"].as_array().unwrap().iter().all(|g| {
            g["queues"]
                .as_array()
                .unwrap()
                .iter()
                .all(|q| q["ready"] == 0)
        })
        && status["projections"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["streams_behind"] == 0 && p["events_behind"] == 0)
}

async fn wait_caught_up(stack: &TestStack) -> Value {
    eventually("the projections to catch up", || async {
        let status = status(stack).await;
        caught_up(&status).then_some(status)
    })
    .await
}

/// id → (name, version) of every account, as GraphQL lists them.
async fn graphql_accounts(api: &Api, token: &str) -> BTreeMap<String, (String, i64)> {
    let reply = api.graphql(token, ACCOUNTS_QUERY, None).await;
    assert!(reply.get("errors").is_none(), "{reply}");
    let connection = &reply["data"]["accounts"];
    let edges = connection["edges"].as_array().expect("accounts listed");
    assert_eq!(
        connection["totalCount"],
        json!(edges.len()),
        "one page holds all"
    );
    edges
        .iter()
        .map(|e| {
            let node = &e["node"];
            (
                node["id"].as_str().unwrap().to_owned(),
                (
                    node["name"].as_str().unwrap().to_owned(),
                    node["version"].as_i64().unwrap(),
                ),
            )
        })
        .collect()
}

/// The oid of the table `read.accounts` names now, and whether row-level security is on.
async fn accounts_table(stack: &TestStack) -> (i64, bool) {
    sqlx::query_as(
        "select oid::bigint, relrowsecurity from pg_class where oid = 'read.accounts'::regclass",
    )
    .fetch_one(&stack.db)
    .await
    .unwrap()
}

type AccountRow = (String, String, i64, String);

/// id, name, version and tier of every account in `read.accounts`.
async fn read_accounts(stack: &TestStack) -> Vec<AccountRow> {
    sqlx::query_as("select id::text, name, version, tier from read.accounts order by id::text")
        .fetch_all(&stack.db)
        .await
        .unwrap()
}

/// The same columns folded from the Account events themselves: the last name and tier any
/// event set, and the newest sequence.
async fn folded_accounts(stack: &TestStack) -> Vec<AccountRow> {
    sqlx::query_as(
        "select aggregate_id, \
             (array_agg(coalesce(payload->'AccountOpened'->>'name', \
                                 payload->'AccountDetailsUpdated'->>'name') order by sequence desc) \
              filter (where coalesce(payload->'AccountOpened'->>'name', \
                                     payload->'AccountDetailsUpdated'->>'name') is not null))[1], \
             max(sequence)::bigint, \
             (array_agg(coalesce(payload->'AccountOpened'->>'tier', \
                                 payload->'AccountTierChanged'->>'to') order by sequence desc) \
              filter (where coalesce(payload->'AccountOpened'->>'tier', \
                                     payload->'AccountTierChanged'->>'to') is not null))[1] \
         from events where aggregate_type = 'Account' \
         group by aggregate_id order by aggregate_id",
    )
    .fetch_all(&stack.db)
    .await
    .unwrap()
}

#[tokio::test]
async fn status_reports_both_groups_with_nothing_parked_and_no_lag_once_caught_up() {
    let run = running("status").await;
    let status = wait_caught_up(&run.stack).await;

    let groups: Vec<&str> = status["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["group"].as_str().unwrap())
        .collect();
    assert_eq!(
        groups,
        [READ_MODELS, PROCESS_MANAGERS, "webhooks"],
        "{status}"
    );
    for name in groups {
        let group = group(&status, name);
        assert_eq!(group["parked"], 0, "{status}");
        let queues = group["queues"].as_array().unwrap();
        // PROJECTOR_PARTITIONS=2 (helpers), each queue consumed by the running `serve`.
        assert_eq!(queues.len(), 2, "{status}");
        for queue in queues {
            let queue_name = queue["queue"].as_str().unwrap();
            assert!(
                queue_name.starts_with(&run.stack.amqp_prefix) && queue_name.contains(name),
                "{queue_name}"
            );
            assert_eq!(queue["ready"], 0, "{status}");
            assert!(queue["consumers"].as_u64().unwrap() >= 1, "{status}");
        }
    }
    assert_eq!(status["unpublished_events"], 0);

    for name in READ_MODEL_NAMES {
        let p = projection(&status, name);
        assert_eq!(p["group"], READ_MODELS, "{status}");
        assert_eq!(
            (&p["streams_behind"], &p["events_behind"]),
            (&json!(0), &json!(0))
        );
    }
    // Three accounts, the admin user, one quote: each stream checkpointed.
    assert_eq!(projection(&status, "accounts")["streams"], 3, "{status}");
    assert_eq!(projection(&status, "users")["streams"], 1, "{status}");
    assert_eq!(projection(&status, "quotes")["streams"], 1, "{status}");
    let managers: Vec<&Value> = status["projections"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["group"] == PROCESS_MANAGERS)
        .collect();
    assert!(!managers.is_empty(), "{status}");
    assert!(managers
        .iter()
        .all(|p| p["streams_behind"] == 0 && p["events_behind"] == 0));

    // The same, as tables for a human.
    let (ok, table, stderr) = run.stack.b2b(&["projections", "status"]).await;
    assert!(ok, "{stderr}");
    assert!(table.contains("read-models (parked)"), "{table}");
    assert!(table.contains("process-managers (parked)"), "{table}");
    assert!(table.contains("unpublished events: 0"), "{table}");
    assert!(table.contains("EVENTS BEHIND"), "{table}");
}

#[tokio::test]
async fn rebuild_swaps_in_the_accounts_model_while_it_is_read_and_written() {
    let run = running("rebuild").await;
    wait_caught_up(&run.stack).await;
    let before = graphql_accounts(&run.api, &run.token).await;
    assert_eq!(before.len(), 3);
    let old_table = accounts_table(&run.stack).await;

    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let writes = Arc::new(AtomicU64::new(0));
    let reader = {
        let api = Api {
            base_url: run.api.base_url.clone(),
            http: reqwest::Client::new(),
        };
        let (token, stop, reads) = (run.token.clone(), stop.clone(), reads.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let reply = api.graphql(&token, ACCOUNTS_QUERY, None).await;
                assert!(reply.get("errors").is_none(), "{reply}");
                assert!(
                    reply["data"]["accounts"]["edges"].is_array(),
                    "no data: {reply}"
                );
                reads.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let writer = {
        let api = Api {
            base_url: run.api.base_url.clone(),
            http: reqwest::Client::new(),
        };
        let (token, stop, writes) = (run.token.clone(), stop.clone(), writes.clone());
        let existing = run.accounts.clone();
        tokio::spawn(async move {
            let mut opened = Vec::new();
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) {
                // Every fourth command opens an account, the others rename one.
                if n.is_multiple_of(4) {
                    let id = Uuid::new_v4();
                    api.ok(&token, id, open_account(&format!("New {n}"))).await;
                    opened.push(id);
                } else {
                    let all: Vec<&Uuid> = existing.iter().chain(&opened).collect();
                    let id = *all[n % all.len()];
                    let rename =
                        json!({"type": "UpdateAccountDetails", "name": format!("Renamed {n}")});
                    api.ok(&token, id, rename).await;
                }
                writes.fetch_add(1, Ordering::Relaxed);
                n += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            opened
        })
    };

    tokio::time::sleep(Duration::from_millis(300)).await;
    let (reads_at_start, writes_at_start) = (
        reads.load(Ordering::Relaxed),
        writes.load(Ordering::Relaxed),
    );
    let (ok, stdout, stderr) = run.stack.b2b(&["projections", "rebuild", "accounts"]).await;
    let (reads_during, writes_during) = (
        reads.load(Ordering::Relaxed) - reads_at_start,
        writes.load(Ordering::Relaxed) - writes_at_start,
    );
    assert!(ok, "{stderr}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    reader
        .await
        .expect("every GraphQL reply had data and no errors");
    let opened = writer.await.expect("every command succeeded");

    let report: Value =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(report["projection"], "accounts", "{report}");
    assert!(report["streams"].as_i64().unwrap() >= 3, "{report}");
    // Replayed before the swap or in it: the replay reads only below the cluster's horizon of
    // committed events, which another database's open transaction can hold back.
    let applied = report["replayed"].as_u64().unwrap() + report["swapped_tail"].as_u64().unwrap();
    assert!(applied >= 5, "{report}");
    assert!(
        reads_during > 0 && writes_during > 0,
        "reads {reads_during}, writes {writes_during}"
    );
    assert!(!opened.is_empty());
    // The rebuild schema and its leftovers are gone.
    let leftovers: i64 = sqlx::query_scalar(
        "select count(*) from pg_namespace where nspname like 'rebuild\\_accounts%'",
    )
    .fetch_one(&run.stack.db)
    .await
    .unwrap();
    assert_eq!(leftovers, 0);
    // A new table under the old name, still guarded by row-level security.
    let (new_table, rls) = accounts_table(&run.stack).await;
    assert_ne!(
        new_table, old_table.0,
        "read.accounts was swapped for the rebuilt table"
    );
    assert!(rls);

    wait_caught_up(&run.stack).await;
    let after = graphql_accounts(&run.api, &run.token).await;
    let expected: BTreeSet<String> = before
        .keys()
        .cloned()
        .chain(opened.iter().map(Uuid::to_string))
        .collect();
    assert_eq!(after.keys().cloned().collect::<BTreeSet<_>>(), expected);

    let rows = read_accounts(&run.stack).await;
    assert_eq!(rows, folded_accounts(&run.stack).await);
    let listed: Vec<(String, String, i64)> = after
        .into_iter()
        .map(|(id, (name, version))| (id, name, version))
        .collect();
    let stored: Vec<(String, String, i64)> = rows
        .into_iter()
        .map(|(id, name, version, _)| (id, name, version))
        .collect();
    assert_eq!(listed, stored);
}

#[tokio::test]
async fn a_parked_event_is_reported_then_replayed_and_an_empty_drop_is_a_no_op() {
    let run = running("parked").await;
    wait_caught_up(&run.stack).await;

    // Nothing parked yet: dropping is a successful no-op that says so.
    let (ok, stdout, stderr) = run
        .stack
        .b2b(&["projections", "parked", "--group", "read-models", "drop"])
        .await;
    assert!(ok, "{stderr}");
    assert_eq!(stdout, "");
    assert_eq!(stderr.trim(), "0 parked message(s) of read-models dropped");

    // A read model that refuses the new account's row: the delivery fails until the delivery
    // limit parks it.
    sqlx::raw_sql(
        "alter table read.accounts add constraint no_parked_names check (name not like 'Parked%')",
    )
    .execute(&run.stack.db)
    .await
    .unwrap();
    let id = Uuid::new_v4();
    run.api.ok(&run.token, id, open_account("Parked Ltd")).await;
    let status = eventually("the event to be parked", || async {
        let status = status(&run.stack).await;
        (parked(&status, READ_MODELS) == 1).then_some(status)
    })
    .await;
    assert_eq!(parked(&status, PROCESS_MANAGERS), 0, "{status}");
    let accounts = projection(&status, "accounts");
    assert_eq!(
        (&accounts["streams_behind"], &accounts["events_behind"]),
        (&json!(1), &json!(1)),
        "{status}"
    );
    let missing: i64 = sqlx::query_scalar("select count(*) from read.accounts where id = $1")
        .bind(id)
        .fetch_one(&run.stack.db)
        .await
        .unwrap();
    assert_eq!(missing, 0);

    // Fixed: the replay applies it.
    sqlx::raw_sql("alter table read.accounts drop constraint no_parked_names")
        .execute(&run.stack.db)
        .await
        .unwrap();
    let (ok, stdout, stderr) = run
        .stack
        .b2b(&["projections", "parked", "--group", "read-models", "replay"])
        .await;
    assert!(ok, "{stderr}");
    assert_eq!(stdout.trim(), format!("Account:{id}:1"));
    assert_eq!(stderr.trim(), "1 parked message(s) of read-models replayed");
    let (name, version): (String, i64) = eventually("the replayed account's row", || async {
        sqlx::query_as("select name, version from read.accounts where id = $1")
            .bind(id)
            .fetch_optional(&run.stack.db)
            .await
            .unwrap()
    })
    .await;
    assert_eq!((name.as_str(), version), ("Parked Ltd", 1));
    let status = wait_caught_up(&run.stack).await;
    assert_eq!(parked(&status, READ_MODELS), 0, "{status}");
    assert_eq!(projection(&status, "accounts")["streams"], 4, "{status}");
    assert_eq!(
        read_accounts(&run.stack).await,
        folded_accounts(&run.stack).await
    );
    let reply = run
        .api
        .graphql(
            &run.token,
            &format!(r#"{{ account(id: "{id}") {{ name version }} }}"#),
            None,
        )
        .await;
    assert_eq!(reply["data"]["account"]["name"], "Parked Ltd", "{reply}");

    // Replayed, so nothing is left to drop.
    let (ok, stdout, stderr) = run
        .stack
        .b2b(&[
            "projections",
            "parked",
            "--group",
            "read-models",
            "drop",
            "--limit",
            "5",
        ])
        .await;
    assert!(ok, "{stderr}");
    assert_eq!(stdout, "");
    assert_eq!(stderr.trim(), "0 parked message(s) of read-models dropped");
}

/// A transaction left open anywhere (here: one that took a transaction id and idles) holds the
/// rebuild's commit-order replay back, while the live projector applies what commits after it:
/// the swap then has streams the live projector is ahead on, and must catch them up.
#[tokio::test]
async fn rebuild_catches_up_streams_the_live_projector_is_ahead_on() {
    let run = running("ahead").await;
    wait_caught_up(&run.stack).await;
    let mut open = run.stack.db.begin().await.unwrap();
    sqlx::query("select pg_current_xact_id()")
        .execute(&mut *open)
        .await
        .unwrap();
    let mut opened = Vec::new();
    for n in 0..2 {
        let id = Uuid::new_v4();
        run.api
            .ok(&run.token, id, open_account(&format!("Late {n}")))
            .await;
        opened.push(id);
    }
    run.api
        .ok(
            &run.token,
            run.accounts[2],
            json!({"type": "UpdateAccountDetails", "name": "Acme Late"}),
        )
        .await;
    wait_caught_up(&run.stack).await;

    let (ok, stdout, stderr) = run.stack.b2b(&["projections", "rebuild", "accounts"]).await;
    open.rollback().await.unwrap();
    assert!(ok, "{stderr}");
    let report: Value =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    // The three late events reached the new table through the swap's catch-up, not the replay
    // (more if some other transaction of the cluster held the replay back even earlier).
    assert!(report["swapped_tail"].as_u64().unwrap() >= 3, "{report}");
    assert_eq!(report["streams"], 5, "{report}");
    assert_eq!(
        read_accounts(&run.stack).await,
        folded_accounts(&run.stack).await
    );
}

/// `--tenant` rebuilds one tenant's rows in place (the table stays), reports the tenant, and
/// refuses a tenant that does not exist without touching anything.
#[tokio::test]
async fn rebuild_of_one_tenant_replaces_its_rows_in_place() {
    let run = running("tenant-rebuild").await;
    wait_caught_up(&run.stack).await;
    let before = read_accounts(&run.stack).await;
    let (table, _) = accounts_table(&run.stack).await;
    sqlx::query("update read.accounts set name = 'damaged'")
        .execute(&run.stack.db)
        .await
        .unwrap();

    let (ok, _, stderr) = run
        .stack
        .b2b(&["projections", "rebuild", "accounts", "--tenant", "nosuch"])
        .await;
    assert!(!ok);
    assert!(
        stderr.contains("no tenant with slug or id nosuch"),
        "{stderr}"
    );

    let (ok, stdout, stderr) = run
        .stack
        .b2b(&[
            "projections",
            "rebuild",
            "accounts",
            "--tenant",
            "tenant-rebuild",
        ])
        .await;
    assert!(ok, "{stderr}");
    let report: Value =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(report["tenant"], "tenant-rebuild", "{report}");
    assert_eq!(report["streams"], 3, "{report}");
    assert_eq!(read_accounts(&run.stack).await, before);
    assert_eq!(
        accounts_table(&run.stack).await.0,
        table,
        "rows replaced, table kept"
    );
}
