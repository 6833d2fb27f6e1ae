//! A fresh database and broker namespace per test, with the real relay and projector running
//! against them as tokio tasks.
#![allow(dead_code)] // Each test file uses a different part of this.

use std::future::Future;
use std::time::Duration;

use aggregates::account::{Account, AccountCommand, Tier};
use aggregates::{Actor, Command, Role};
use chrono::{DateTime, Utc};
use event_store::history::stream_range;
use event_store::relay::{self, RelayConfig};
use event_store::topology::{long_string, HASH_HEADER};
use event_store::{CommandBus, EventMetadata, StoredEvent, Topology};
use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeleteOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};

use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};
use projections::{ProjectorConfig, READ_MODELS};
use rust_decimal::Decimal;
use sqlx::PgPool;
use test_support::TestDatabase;
use tokio::task::JoinHandle;
use uuid::Uuid;

const TIMEOUT: Duration = Duration::from_secs(60);

pub struct TestStack {
    /// Dropped with the stack.
    pub database: TestDatabase,
    /// Logs in as `b2b_worker`, like the relay and the projector.
    pub pool: PgPool,
    /// The owner (a superuser): reads past row-level security, moves the relay checkpoint.
    pub admin: PgPool,
    pub amqp_url: String,
    pub topology: Topology,
    pub tenant_id: Uuid,
    pub user_id: Uuid,
    tasks: Vec<JoinHandle<()>>,
}

impl TestStack {
    pub async fn new(partitions: u16) -> Self {
        init_tracing();
        let database = TestDatabase::migrated("projections_test").await;
        let pool = event_store::db::connect(&database.worker_url, 5)
            .await
            .expect("connect");
        let admin = event_store::db::connect(&database.url, 2)
            .await
            .expect("connect as admin");
        let topology = Topology {
            prefix: format!("projections-test-{}", Uuid::new_v4().simple()),
            partitions,
            groups: vec![READ_MODELS.to_owned()],
            routing: projections::routing(),
        };
        Self {
            database,
            pool,
            admin,
            amqp_url: env("AMQP_URL"),
            topology,
            tenant_id: Uuid::new_v4(),
            user_id: Uuid::new_v4(),
            tasks: Vec::new(),
        }
    }

    pub fn start_relay(&mut self) {
        let config = RelayConfig::new(self.amqp_url.clone(), self.topology.clone());
        let committed = std::sync::Arc::new(tokio::sync::Notify::new());
        let relay = relay::run(self.pool.clone(), config, committed, Default::default());
        self.tasks.push(tokio::spawn(relay));
    }

    fn projector_config(&self) -> ProjectorConfig {
        ProjectorConfig {
            amqp_url: self.amqp_url.clone(),
            topology: self.topology.clone(),
            group: READ_MODELS.to_owned(),
            prefetch: 10,
            broker_health: Default::default(),
        }
    }

    pub fn start_projector(&mut self) {
        let config = self.projector_config();
        let worker = projections::run(
            self.pool.clone(),
            config,
            projections::read_models(),
            Default::default(),
        );
        self.tasks.push(tokio::spawn(worker));
    }

    /// Declares exchanges and queues, as the relay and projector would at start.
    pub async fn declare(&self) {
        let (connection, channel) = self.channel().await;
        self.topology
            .declare(&channel)
            .await
            .expect("declare topology");
        connection.close(200, "done".into()).await.ok();
    }

    async fn channel(&self) -> (Connection, Channel) {
        let connection = Connection::connect(&self.amqp_url, ConnectionProperties::default())
            .await
            .expect("reach RabbitMQ");
        let channel = connection.create_channel().await.expect("open channel");
        (connection, channel)
    }

    /// Publishes events by hand, as the relay does (same exchange, routing key and hash
    /// header), and waits for the broker to confirm each.
    pub async fn publish(&self, events: &[StoredEvent]) {
        let messages: Vec<(Vec<u8>, String, String)> = events
            .iter()
            .map(|e| {
                (
                    serde_json::to_vec(e).unwrap(),
                    e.routing_key(),
                    e.aggregate_id.clone(),
                )
            })
            .collect();
        self.publish_raw(&messages).await;
    }

    /// Publishes arbitrary bodies: (body, routing key, aggregate id to hash on).
    pub async fn publish_raw(&self, messages: &[(Vec<u8>, String, String)]) {
        let (connection, channel) = self.channel().await;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        for (body, routing_key, aggregate_id) in messages {
            let mut headers = FieldTable::default();
            headers.insert(HASH_HEADER.into(), long_string(aggregate_id));
            let properties = BasicProperties::default()
                .with_delivery_mode(2)
                .with_headers(headers);
            let options = BasicPublishOptions {
                mandatory: true,
                ..BasicPublishOptions::default()
            };
            let confirm = channel
                .basic_publish(
                    self.topology.events_exchange().into(),
                    routing_key.as_str().into(),
                    options,
                    body,
                    properties,
                )
                .await
                .expect("publish")
                .await
                .expect("confirm");
            assert_eq!(
                confirm,
                Confirmation::Ack(None),
                "the broker routed and kept it"
            );
        }
        connection.close(200, "done".into()).await.ok();
    }

    pub fn accounts(&self) -> AccountStore {
        AccountStore {
            bus: CommandBus::new(self.pool.clone()),
            tenant_id: self.tenant_id,
            user_id: self.user_id,
        }
    }

    pub async fn events(&self, aggregate_id: Uuid) -> Vec<StoredEvent> {
        stream_range(
            &self.admin,
            "Account",
            &aggregate_id.to_string(),
            0,
            i64::MAX,
        )
        .await
        .expect("read stream")
    }

    pub async fn account_row(&self, id: Uuid) -> Option<AccountRow> {
        sqlx::query_as("select * from read.accounts where id = $1")
            .bind(id)
            .fetch_optional(&self.admin)
            .await
            .expect("read account row")
    }

    pub async fn checkpoint(&self, id: Uuid) -> Option<Checkpoint> {
        sqlx::query_as(
            "select last_sequence, updated_at from projection_checkpoints \
             where projection = 'accounts' and aggregate_type = 'Account' and aggregate_id = $1",
        )
        .bind(id.to_string())
        .fetch_optional(&self.admin)
        .await
        .expect("read checkpoint")
    }

    /// Waits until the accounts projection has applied `sequence` of the account.
    pub async fn projected(&self, id: Uuid, sequence: i64) -> AccountRow {
        eventually(
            &format!("account {id} projected up to {sequence}"),
            || async {
                let done = self
                    .checkpoint(id)
                    .await
                    .is_some_and(|c| c.last_sequence >= sequence);
                if done {
                    self.account_row(id).await
                } else {
                    None
                }
            },
        )
        .await
    }

    /// The broker's name for this test's projector connection.
    pub fn projector_connection(&self) -> String {
        projections::consumer::connection_name(&self.projector_config())
    }

    /// Consumers on each of the group's queues.
    pub async fn consumers_per_queue(&self) -> Vec<u32> {
        let (connection, channel) = self.channel().await;
        let mut counts = Vec::new();
        for partition in 0..self.topology.partitions {
            let queue = self.topology.group_queue(READ_MODELS, partition);
            let options = QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            };
            let declared = channel
                .queue_declare(queue.into(), options, FieldTable::default())
                .await
                .expect("queue exists");
            counts.push(declared.consumer_count());
        }
        connection.close(200, "done".into()).await.ok();
        counts
    }

    pub async fn parked(&self) -> u32 {
        projections::parked_count(&self.amqp_url, &self.topology, READ_MODELS)
            .await
            .expect("count parked messages")
    }

    /// Stops the workers and removes the database and the broker objects of this test.
    pub async fn tear_down(mut self) {
        for task in &self.tasks {
            task.abort();
        }
        for task in std::mem::take(&mut self.tasks) {
            let _ = task.await;
        }
        self.pool.close().await;
        self.admin.close().await;
        self.delete_broker_objects().await;
    }

    async fn delete_broker_objects(&self) {
        let (connection, channel) = self.channel().await;
        let group = READ_MODELS;
        let mut queues: Vec<String> = (0..self.topology.partitions)
            .map(|p| self.topology.group_queue(group, p))
            .collect();
        queues.push(self.topology.parked_queue(group));
        for queue in queues {
            let _ = channel
                .queue_delete(queue.into(), QueueDeleteOptions::default())
                .await;
        }
        let exchanges = [
            self.topology.group_exchange(group),
            self.topology.parked_exchange(group),
            self.topology.events_exchange(),
        ];
        for exchange in exchanges {
            let _ = channel
                .exchange_delete(exchange.into(), ExchangeDeleteOptions::default())
                .await;
        }
        connection.close(200, "done".into()).await.ok();
    }
}

/// Runs account commands as one tenant's admin (or as the system, for the process-only ones).
pub struct AccountStore {
    bus: CommandBus,
    tenant_id: Uuid,
    user_id: Uuid,
}

impl AccountStore {
    pub async fn as_user(&self, id: Uuid, body: AccountCommand) -> u64 {
        let actor = Actor::user(self.user_id, vec![Role::TenantAdmin]);
        self.execute(id, actor, body).await
    }

    pub async fn as_system(&self, id: Uuid, body: AccountCommand) -> u64 {
        self.execute(id, Actor::system("test-process"), body).await
    }

    async fn execute(&self, id: Uuid, actor: Actor, body: AccountCommand) -> u64 {
        let now = Utc::now();
        let metadata = EventMetadata {
            tenant_id: self.tenant_id,
            actor: actor.clone(),
            correlation_id: Uuid::new_v4(),
            causation_id: Uuid::new_v4(),
            request_id: Uuid::new_v4(),
            recorded_at: now,
            client: Some("projections-test".to_owned()),
            traceparent: None,
            api_key_id: None,
        };
        self.bus
            .store::<Account>()
            .execute(
                &id.to_string(),
                Command::new(self.tenant_id, actor, now, body),
                None,
                &metadata,
            )
            .await
            .expect("command accepted")
    }

    pub async fn open(&self, id: Uuid, name: &str) -> u64 {
        self.as_user(id, open_account(name)).await
    }
}

pub fn open_account(name: &str) -> AccountCommand {
    AccountCommand::OpenAccount {
        name: name.to_owned(),
        legal_name: format!("{name} GmbH"),
        country: "de".to_owned(),
        billing_email: "Billing@Example.com".to_owned(),
        currency: "EUR".to_owned(),
        tier: Tier::Standard,
    }
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct AccountRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub legal_name: String,
    pub country: String,
    pub billing_email: String,
    pub currency: String,
    pub tier: String,
    pub status: String,
    pub credit_limit: Option<Decimal>,
    pub api_quota_per_minute: Option<i32>,
    pub status_reason: Option<String>,
    pub active_contracts: i32,
    pub version: i64,
    pub opened_at: DateTime<Utc>,
    pub opened_by: Option<Uuid>,
    pub updated_at: DateTime<Utc>,
    pub updated_by: Option<Uuid>,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Checkpoint {
    pub last_sequence: i64,
    pub updated_at: DateTime<Utc>,
}

/// Polls `probe` until it yields something, failing the test after a minute.
pub async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: run `source deploy/local/env.sh` (stack: deploy/local/stack.sh up)"
        )
    })
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "warn,projections=info".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}

/// Runs an Erlang expression on the local stack's RabbitMQ node; returns what it printed.
fn rabbit_eval(expression: &str) -> String {
    let root = env("B2B_ROOT");
    let output = std::process::Command::new("bash")
        .arg(format!("{root}/deploy/local/stack.sh"))
        .args(["rabbitmqctl", "eval", expression])
        .output()
        .expect("run rabbitmqctl");
    assert!(
        output.status.success(),
        "rabbitmqctl eval failed: {output:?}"
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// Erlang list of the pids of the broker connections named `name`.
/// Connections still opening or already closing have no client properties (`none`, or an
/// error from `connection_info`); they are skipped rather than failing the whole expression.
fn connections_named(name: &str) -> String {
    format!(
        "[P || P <- rabbit_networking:connections(), \
         Info <- [catch rabbit_networking:connection_info(P, [client_properties])], \
         is_list(Info), \
         Props <- [proplists:get_value(client_properties, Info, [])], \
         is_list(Props), \
         {{_, _, N}} <- [lists:keyfind(<<\"connection_name\">>, 1, Props)], \
         N =:= <<\"{name}\">>]"
    )
}

/// How many connections named `name` the broker holds.
pub fn broker_connections(name: &str) -> usize {
    rabbit_eval(&format!("length({}).", connections_named(name)))
        .parse()
        .expect("a count")
}

/// Has the broker close the connections named `name`, as a broker restart or a network cut
/// would, and returns how many it closed. Only this test's connections are touched: other
/// tests share the broker.
pub fn drop_broker_connections(name: &str) -> usize {
    let expression = format!(
        "length([rabbit_networking:close_connection(P, \"test: connection dropped\") || P <- {}]).",
        connections_named(name)
    );
    rabbit_eval(&expression).parse().expect("a count")
}
