//! The local cluster under faults (`make test-cluster`: `deploy/cluster/cluster.sh up`, then
//! these tests with the cluster's environment). While keyed commands flow through HAProxy, one
//! RabbitMQ node is killed and brought back, a command-API replica is killed and restarted,
//! the active relay is killed, and the standby Postgres is restarted. Afterwards: every
//! acknowledged command is stored once, the read models equal a fold of the events, nothing is
//! parked, and HAProxy answered every request. Ignored by `make test` (no cluster there).
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{json, Value};
use sqlx::PgPool;
use tokio::process::Command;
use uuid::Uuid;

#[path = "api/helpers.rs"]
mod helpers;

use helpers::{create_tenant_with, open_account, Api, Tenant};

/// The two tests stop and start the cluster's processes: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const ACCOUNTS: usize = 40;
const CONCURRENCY: usize = 8;
/// Commands written while the projectors are stopped, for the throughput figures.
const BACKLOG: usize = 4_000;

/// What `deploy/cluster/cluster.sh env` describes.
struct Cluster {
    commands: Api,
    queries: Api,
    primary: PgPool,
    dir: String,
    script: String,
    /// HAProxy's statistics page.
    stats_url: String,
    rabbit_nodes: Vec<String>,
}

impl Cluster {
    async fn from_env() -> Self {
        let var = |name: &str| {
            std::env::var(name)
                .unwrap_or_else(|_| panic!("{name} unset: run these through `make test-cluster`"))
        };
        let api = |url: String| Api {
            base_url: url,
            http: reqwest::Client::new(),
        };
        Self {
            commands: api(var("B2B_CLUSTER_COMMAND_URL")),
            queries: api(var("B2B_CLUSTER_QUERY_URL")),
            primary: PgPool::connect(&var("DATABASE_OWNER_URL")).await.unwrap(),
            dir: var("B2B_CLUSTER_DIR"),
            script: var("B2B_CLUSTER_SCRIPT"),
            stats_url: var("B2B_CLUSTER_STATS_URL"),
            rabbit_nodes: var("B2B_CLUSTER_RABBIT_NODES")
                .split(',')
                .map(str::to_owned)
                .collect(),
        }
    }

    /// Runs `cluster.sh` (kill, start, restart, rabbitmqctl) and returns its stdout.
    async fn script(&self, args: &[&str]) -> String {
        let output = Command::new("bash")
            .arg(&self.script)
            .args(args)
            .output()
            .await
            .unwrap();
        assert!(
            output.status.success(),
            "cluster.sh {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    async fn create_tenant(&self, prefix: &str) -> Tenant {
        let slug = format!("{prefix}-{}", &Uuid::new_v4().simple().to_string()[..8]);
        create_tenant_with(Command::new(env!("CARGO_BIN_EXE_b2b")), &slug).await
    }

    async fn relay_leader(&self) -> Uuid {
        sqlx::query_scalar("select leader from relay_state")
            .fetch_one(&self.primary)
            .await
            .unwrap()
    }

    /// The relay process holding the lease: the one whose log names the leader's id.
    async fn active_relay(&self) -> &'static str {
        let leader = self.relay_leader().await;
        for relay in ["relay-1", "relay-2"] {
            let log = std::fs::read_to_string(format!("{}/logs/{relay}.log", self.dir))
                .unwrap_or_default();
            if log.contains(&leader.to_string()) {
                return relay;
            }
        }
        panic!("no relay log names the leader {leader}");
    }

    async fn wait_until_published(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let pending = event_store::relay::backlog(&self.primary).await.unwrap();
            if pending == 0 {
                return;
            }
            assert!(Instant::now() < deadline, "{pending} events unpublished");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until every account of `tenant` is projected at its stream's version; returns
    /// how long that took from the first account seen projected.
    async fn wait_until_projected(&self, tenant: Uuid, limit: Duration) -> Duration {
        let started = Instant::now();
        let mut first_seen = None;
        loop {
            let (behind, projected): (i64, i64) = sqlx::query_as(
                "select count(*) filter (where a.version is distinct from e.last), \
                        count(a.id) \
                   from (select aggregate_id, max(sequence) as last from events \
                          where aggregate_type = 'Account' and tenant_id = $1 \
                          group by aggregate_id) e \
                   left join read.accounts a on a.id::text = e.aggregate_id",
            )
            .bind(tenant)
            .fetch_one(&self.primary)
            .await
            .unwrap();
            if projected > 0 {
                first_seen.get_or_insert_with(Instant::now);
            }
            if behind == 0 {
                return first_seen.map_or(Duration::ZERO, |first| first.elapsed());
            }
            assert!(
                started.elapsed() < limit,
                "{behind} accounts never caught up"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// HAProxy's view of one server (`UP`, `DOWN`, ...).
    async fn balancer_status(&self, server: &str) -> String {
        let csv = reqwest::get(format!("{};csv", self.stats_url))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        csv.lines()
            .map(|line| line.split(',').collect::<Vec<_>>())
            .find(|fields| fields.get(1) == Some(&server))
            .and_then(|fields| fields.get(17).map(|status| status.to_string()))
            .unwrap_or_else(|| panic!("{server} not in HAProxy's statistics"))
    }

    /// Each quorum queue's leader, of the queues whose leader runs (`--online`: a queue
    /// whose leader is down is left out rather than waited for).
    async fn queue_leaders(&self) -> Vec<String> {
        self.script(&[
            "rabbitmqctl",
            "-q",
            "list_queues",
            "--online",
            "name",
            "leader",
        ])
        .await
        .lines()
        .filter_map(|line| Some(line.split_whitespace().nth(1)?.to_owned()))
        .collect()
    }

    /// The RabbitMQ node leading the most queues, as `cluster.sh` names it (`rabbit-N`), and
    /// its node name.
    async fn busiest_rabbit(&self) -> (String, String) {
        let leaders = self.queue_leaders().await;
        let (index, node) = self
            .rabbit_nodes
            .iter()
            .enumerate()
            .max_by_key(|(_, node)| leaders.iter().filter(|l| l == node).count())
            .unwrap();
        (format!("rabbit-{}", index + 1), node.clone())
    }

    /// The account's version in the read model (0 before it is projected).
    async fn projected_version(&self, account: Uuid) -> i64 {
        sqlx::query_scalar::<_, i64>("select version from read.accounts where id = $1")
            .bind(account)
            .fetch_optional(&self.primary)
            .await
            .unwrap()
            .unwrap_or(0)
    }

    /// Messages in the parked queues, across the cluster.
    async fn parked(&self) -> i64 {
        let queues = self
            .script(&["rabbitmqctl", "-q", "list_queues", "name", "messages"])
            .await;
        queues
            .lines()
            .filter(|line| line.contains(".parked"))
            .filter_map(|line| line.split_whitespace().nth(1)?.parse::<i64>().ok())
            .sum()
    }
}

/// Polls `done` until it holds (within a minute); returns the seconds it took.
async fn until<F, Fut>(mut done: F) -> f64
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !done().await {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "not within a minute"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    started.elapsed().as_secs_f64()
}

/// How a keyed command went: its version, and the answers before it that were not b2b's.
struct Delivery {
    version: u64,
    /// Attempts HAProxy answered with its own 502/503 or that got no answer at all.
    unanswered: usize,
}

/// Sends one keyed command until it is acknowledged, as a client keeping its key would.
async fn deliver(api: &Api, token: &str, id: Uuid, key: &str, body: &Value) -> Delivery {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut unanswered = 0;
    loop {
        assert!(Instant::now() < deadline, "{key} never succeeded");
        let sent = api
            .command(token, "accounts", id)
            .header("Idempotency-Key", key)
            .json(body)
            .timeout(Duration::from_secs(30))
            .send()
            .await;
        match sent {
            Ok(response) if response.status().is_success() => {
                let reply: Value = response.json().await.unwrap();
                let version = reply["version"].as_u64().unwrap();
                return Delivery {
                    version,
                    unanswered,
                };
            }
            Ok(response) if response.status().is_server_error() => {
                let problem = response.headers().get("content-type").cloned();
                // b2b answers problem+json; a bare 502/503 is HAProxy's own.
                if problem.is_none_or(|t| !t.to_str().unwrap_or("").contains("problem")) {
                    unanswered += 1;
                }
            }
            Ok(response) => panic!("{key}: unexpected {}", response.status()),
            Err(_) => unanswered += 1,
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
#[ignore = "needs the local cluster: make test-cluster"]
async fn a_node_a_replica_the_active_relay_and_the_standby_fail_under_load_and_nothing_is_lost_or_doubled(
) {
    let _serial = SERIAL.lock().await;
    let cluster = Cluster::from_env().await;
    let tenant = cluster.create_tenant("faults").await;
    let token = cluster.commands.login(&tenant).await;
    let ids: Vec<Uuid> = (0..ACCOUNTS).map(|_| Uuid::new_v4()).collect();
    for (n, id) in ids.iter().enumerate() {
        let key = format!("open-{n}");
        deliver(&cluster.commands, &token, *id, &key, &open_account("Node")).await;
    }
    // Written to while the faults happen, to see when events flow again.
    let beacon = Uuid::new_v4();
    deliver(
        &cluster.commands,
        &token,
        beacon,
        "beacon",
        &open_account("Beacon"),
    )
    .await;

    // The load runs until the last fault has been dealt with.
    let faulting = AtomicBool::new(true);
    let started = Instant::now();
    let load = futures::stream::iter(0..)
        .take_while(|_| futures::future::ready(faulting.load(Ordering::Relaxed)))
        .map(|n| {
            let (api, token, id) = (&cluster.commands, &token, ids[n % ACCOUNTS]);
            let body = match n % 2 {
                0 => json!({"type": "UpdateAccountDetails", "name": format!("name-{n}")}),
                _ => json!({"type": "SetApiQuota", "requests_per_minute": n + 1}),
            };
            async move {
                let delivery = deliver(api, token, id, &format!("cmd-{n}"), &body).await;
                (id, delivery)
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect::<Vec<_>>();
    let load = async {
        let deliveries = load.await;
        (deliveries, started.elapsed())
    };
    // Each fault, and how long until the cluster had routed around it.
    let faults = async {
        let pause = || tokio::time::sleep(Duration::from_secs(2));
        let mut log = Vec::new();
        pause().await;
        let (rabbit, node) = cluster.busiest_rabbit().await;
        let led = cluster
            .queue_leaders()
            .await
            .iter()
            .filter(|l| **l == node)
            .count();
        cluster.script(&["kill", &rabbit]).await;
        // From the kill until an event written after it is in the read models: new queue
        // leaders elected, the relay and the projectors reconnected through HAProxy. One
        // event, waited for: writing a new one on every poll would ask the read model to have
        // it within the moment between the reply and the poll.
        let killed = Instant::now();
        let key = Uuid::new_v4().to_string();
        let quota = json!({"type": "SetApiQuota", "requests_per_minute": 5});
        let written = deliver(&cluster.commands, &token, beacon, &key, &quota).await;
        until(|| async { cluster.projected_version(beacon).await >= written.version as i64 }).await;
        let took = killed.elapsed().as_secs_f64();
        log.push(format!(
            "{rabbit} killed (it led {led} queues): events reached the read models again \
             {took:.1} s later"
        ));
        pause().await;
        cluster.script(&["kill", "command-api-1"]).await;
        let took = until(|| async {
            cluster
                .balancer_status("command-api-1")
                .await
                .starts_with("DOWN")
        })
        .await;
        log.push(format!(
            "command-api-1 killed: HAProxy took it out in {took:.1} s"
        ));
        pause().await;
        let (relay, leader) = (cluster.active_relay().await, cluster.relay_leader().await);
        cluster.script(&["kill", relay]).await;
        let took = until(|| async { cluster.relay_leader().await != leader }).await;
        log.push(format!(
            "{relay} (active) killed: the standby relay led in {took:.1} s"
        ));
        cluster.script(&["restart", "postgres-standby"]).await;
        log.push("postgres-standby restarted".to_owned());
        cluster.script(&["start", &rabbit]).await;
        cluster.script(&["start", "command-api-1"]).await;
        cluster.script(&["start", relay]).await;
        faulting.store(false, Ordering::Relaxed);
        log
    };
    let ((deliveries, elapsed), faults) = futures::join!(load, faults);
    let commands = deliveries.len();

    // Every acknowledged command once: each stream holds its open plus one event per
    // acknowledged command, at versions 1..=n, each version acknowledged once.
    let mut versions: HashMap<Uuid, Vec<u64>> = HashMap::new();
    for (id, delivery) in &deliveries {
        versions.entry(*id).or_default().push(delivery.version);
    }
    let stored: BTreeMap<String, i64> = sqlx::query_as::<_, (String, i64)>(
        "select aggregate_id, count(*) from events \
          where aggregate_type = 'Account' and tenant_id = $1 group by 1",
    )
    .bind(tenant.id)
    .fetch_all(&cluster.primary)
    .await
    .unwrap()
    .into_iter()
    .collect();
    for id in &ids {
        let mut acknowledged = versions.remove(id).unwrap_or_default();
        acknowledged.sort_unstable();
        let expected: Vec<u64> = (2..=acknowledged.len() as u64 + 1).collect();
        assert_eq!(acknowledged, expected, "versions acknowledged for {id}");
        assert_eq!(
            stored.get(&id.to_string()).copied(),
            Some(acknowledged.len() as i64 + 1),
            "events stored for {id}"
        );
    }

    cluster.wait_until_published(Duration::from_secs(90)).await;
    cluster
        .wait_until_projected(tenant.id, Duration::from_secs(90))
        .await;
    assert_read_models_fold_the_events(&cluster.primary, tenant.id, ACCOUNTS + 1).await;
    assert_eq!(cluster.parked().await, 0, "parked messages");

    // The query API reads the standby, and still reads its writes.
    let (last_id, last) = deliveries.last().map(|(id, d)| (*id, d.version)).unwrap();
    let version = read_your_write(&cluster.queries, &token, last_id, last).await;
    assert!(version >= last as i64, "read {version}, wrote {last}");

    let unanswered: usize = deliveries.iter().map(|(_, d)| d.unanswered).sum();
    println!(
        "cluster: {commands} keyed commands acknowledged in {:.1} s ({:.0}/s) through faults \
         ({}); lost 0, doubled 0, parked 0; attempts HAProxy could not hand to b2b: {unanswered}",
        elapsed.as_secs_f64(),
        commands as f64 / elapsed.as_secs_f64(),
        faults.join("; ")
    );
}

/// The account read model, row for row, equals what its events say.
async fn assert_read_models_fold_the_events(db: &PgPool, tenant: Uuid, accounts: usize) {
    type Row = (String, String, Option<i32>, i64);
    let folded: Vec<Row> = sqlx::query_as(
        "select aggregate_id, \
           (array_agg(coalesce(payload->'AccountDetailsUpdated'->>'name', \
                               payload->'AccountOpened'->>'name') order by sequence desc) \
              filter (where event_type in ('AccountOpened', 'AccountDetailsUpdated')))[1], \
           ((array_agg(payload->'ApiQuotaSet'->>'requests_per_minute' order by sequence desc) \
              filter (where event_type = 'ApiQuotaSet'))[1])::int, \
           max(sequence) \
         from events where aggregate_type = 'Account' and tenant_id = $1 group by 1 order by 1",
    )
    .bind(tenant)
    .fetch_all(db)
    .await
    .unwrap();
    let projected: Vec<Row> = sqlx::query_as(
        "select id::text, name, api_quota_per_minute, version from read.accounts \
          where tenant_id = $1 order by 1",
    )
    .bind(tenant)
    .fetch_all(db)
    .await
    .unwrap();
    assert_eq!(projected.len(), accounts);
    assert_eq!(projected, folded);
}

/// Reads the account through the query API with `X-Await-Version`; returns the version seen.
async fn read_your_write(api: &Api, token: &str, id: Uuid, version: u64) -> i64 {
    let query = format!(r#"{{ account(id: "{id}") {{ version }} }}"#);
    let reply = api.graphql(token, &query, Some((id, version))).await;
    reply["data"]["account"]["version"]
        .as_i64()
        .unwrap_or_else(|| panic!("{reply}"))
}

/// Projection throughput with one and with two projector processes: the projectors stop,
/// a backlog of commands is written, then they start and the time to catch up is measured.
#[tokio::test]
#[ignore = "needs the local cluster: make test-cluster"]
async fn projection_throughput_with_one_and_with_two_projectors() {
    let _serial = SERIAL.lock().await;
    let cluster = Cluster::from_env().await;
    let mut figures = Vec::new();
    for projectors in [&["projector-1"][..], &["projector-1", "projector-2"][..]] {
        let tenant = cluster.create_tenant("throughput").await;
        let token = cluster.commands.login(&tenant).await;
        cluster.script(&["kill", "projector-1"]).await;
        cluster.script(&["kill", "projector-2"]).await;
        let ids: Vec<Uuid> = (0..ACCOUNTS).map(|_| Uuid::new_v4()).collect();
        for (n, id) in ids.iter().enumerate() {
            let key = format!("open-{n}");
            deliver(
                &cluster.commands,
                &token,
                *id,
                &key,
                &open_account("Backlog"),
            )
            .await;
        }
        futures::stream::iter(0..BACKLOG)
            .map(|n| {
                let (api, token, id) = (&cluster.commands, &token, ids[n % ACCOUNTS]);
                let body = json!({"type": "SetApiQuota", "requests_per_minute": n + 1});
                async move { deliver(api, token, id, &format!("b-{n}"), &body).await }
            })
            .buffer_unordered(CONCURRENCY)
            .count()
            .await;
        cluster.wait_until_published(Duration::from_secs(60)).await;
        for projector in projectors {
            cluster.script(&["start", projector]).await;
        }
        let took = cluster
            .wait_until_projected(tenant.id, Duration::from_secs(120))
            .await;
        let events = (ACCOUNTS + BACKLOG) as f64;
        figures.push((projectors.len(), events / took.as_secs_f64().max(0.001)));
        assert_read_models_fold_the_events(&cluster.primary, tenant.id, ACCOUNTS).await;
    }
    cluster.script(&["start", "projector-2"]).await;
    for (projectors, rate) in figures {
        println!("cluster: {projectors} projector process(es): {rate:.0} events/s");
    }
}
