//! The process managers and the timer worker running as tasks against a [`TestStack`], with a
//! command bus to drive the aggregates and the adjustable clock (`test_clock`) to move time.
#![allow(dead_code)] // Each test uses a different part of this.

use std::sync::Arc;
use std::time::Duration;

use aggregates::approval::{Approval, ApprovalCommand};
use aggregates::contract::{Contract, ContractCommand};
use aggregates::quote::{Quote, QuoteCommand, Unit};
use aggregates::user::{User, UserCommand};
use aggregates::{Actor, Command, Role};
use chrono::{DateTime, Utc};
use event_store::clock::AdjustableClock;
use event_store::history::stream_range;
use event_store::{Clock, CommandBus, EventMetadata, StoredEvent};
use lapin::options::{ExchangeDeleteOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use projections::process::{ProcessIds, Reactor, TimerScheduling};
use projections::timers::TimerConfig;
use projections::{ProjectorConfig, PROCESS_MANAGERS};
use rust_decimal::Decimal;
use sqlx::PgPool;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::support::{eventually, TestStack};

pub struct ProcessStack {
    pub stack: TestStack,
    /// A pool of its own: the consumers hold a transaction per queue while their commands run
    /// on further connections.
    pub pool: PgPool,
    pub bus: Arc<CommandBus>,
    pub clock: Arc<dyn Clock>,
    /// The deployment's keyed ids: what the processes create, and where.
    pub ids: ProcessIds,
    processes: Option<JoinHandle<()>>,
    timers: Option<JoinHandle<()>>,
}

impl ProcessStack {
    /// A fresh stack with the relay running and the process-manager group declared.
    pub async fn new(partitions: u16) -> Self {
        let mut stack = TestStack::new(partitions).await;
        stack.topology.groups.push(PROCESS_MANAGERS.to_owned());
        stack.start_relay();
        let pool = event_store::db::connect(&stack.database.worker_url, 20)
            .await
            .expect("connect");
        let bus = Arc::new(CommandBus::new(pool.clone()));
        let clock: Arc<dyn Clock> = Arc::new(AdjustableClock::new(pool.clone()));
        let ids = ProcessIds::load(&pool).await.expect("the process id key");
        // Registering users keeps credentials, which need the tenant to exist.
        sqlx::query("insert into tenants (id, slug, name) values ($1, $2, 'Test tenant')")
            .bind(stack.tenant_id)
            .bind(format!("t-{}", stack.tenant_id.simple()))
            .execute(&stack.admin)
            .await
            .expect("create the tenant");
        Self {
            stack,
            pool,
            bus,
            clock,
            ids,
            processes: None,
            timers: None,
        }
    }

    pub fn start_processes(&mut self) {
        let config = ProjectorConfig {
            amqp_url: self.stack.amqp_url.clone(),
            topology: self.stack.topology.clone(),
            group: PROCESS_MANAGERS.to_owned(),
            prefetch: 10,
            broker_health: Default::default(),
        };
        let managers =
            projections::process_managers(self.bus.clone(), self.ids.clone(), self.clock.clone());
        let worker = projections::run(self.pool.clone(), config, managers, Default::default());
        self.processes = Some(tokio::spawn(worker));
    }

    pub fn start_timers(&mut self) {
        let config = TimerConfig {
            poll_interval: Duration::from_millis(100),
            batch_size: 10,
        };
        let worker = projections::timers::run(
            self.pool.clone(),
            self.bus.clone(),
            self.clock.clone(),
            (config, Default::default()),
        );
        self.timers = Some(tokio::spawn(worker));
    }

    /// Stops the timer worker, as a crash or a deploy would.
    pub async fn stop_timers(&mut self) {
        if let Some(task) = self.timers.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// Moves the adjustable clock `by` ahead of real time.
    pub async fn move_clock(&self, by: chrono::Duration) {
        sqlx::query("update test_clock set offset_by = make_interval(secs => $1)")
            .bind(by.num_seconds() as f64)
            .execute(&self.stack.admin)
            .await
            .expect("move the clock");
    }

    pub async fn now(&self) -> DateTime<Utc> {
        self.clock.now().await.expect("read the clock")
    }

    pub fn metadata(&self, actor: &Actor, at: DateTime<Utc>) -> EventMetadata {
        EventMetadata {
            tenant_id: self.stack.tenant_id,
            actor: actor.clone(),
            correlation_id: Uuid::new_v4(),
            causation_id: Uuid::new_v4(),
            request_id: Uuid::new_v4(),
            recorded_at: at,
            client: Some("process-test".to_owned()),
            traceparent: None,
            api_key_id: None,
        }
    }

    /// The test's own user, acting as an Operator: drafts, submits, sends and accepts.
    pub fn operator(&self) -> Actor {
        Actor::user(self.stack.user_id, vec![Role::Operator])
    }

    pub async fn quote(&self, actor: &Actor, id: Uuid, body: QuoteCommand) -> u64 {
        let at = self.now().await;
        let command = Command::new(self.stack.tenant_id, actor.clone(), at, body);
        self.bus
            .store::<Quote>()
            .execute(&id.to_string(), command, None, &self.metadata(actor, at))
            .await
            .expect("quote command accepted")
    }

    pub async fn approval(&self, actor: &Actor, id: Uuid, body: ApprovalCommand) -> u64 {
        let at = self.now().await;
        let command = Command::new(self.stack.tenant_id, actor.clone(), at, body);
        self.bus
            .store::<Approval>()
            .execute(&id.to_string(), command, None, &self.metadata(actor, at))
            .await
            .expect("approval command accepted")
    }

    pub async fn contract(&self, actor: &Actor, id: Uuid, body: ContractCommand) -> u64 {
        let at = self.now().await;
        let command = Command::new(self.stack.tenant_id, actor.clone(), at, body);
        self.bus
            .store::<Contract>()
            .execute(&id.to_string(), command, None, &self.metadata(actor, at))
            .await
            .expect("contract command accepted")
    }

    async fn user(&self, id: Uuid, body: UserCommand) {
        let actor = Actor::system("test-setup");
        let at = self.now().await;
        let command = Command::new(self.stack.tenant_id, actor.clone(), at, body);
        self.bus
            .store::<User>()
            .execute(&id.to_string(), command, None, &self.metadata(&actor, at))
            .await
            .expect("user command accepted");
    }

    /// Registers an approver with `role` and a limit of 1,000,000 EUR; returns its actor.
    pub async fn approver(&self, role: Role) -> Actor {
        let id = Uuid::new_v4();
        let register = UserCommand::RegisterUser {
            user_id: id,
            email: format!("{}@example.com", id.simple()),
            display_name: format!("{role:?} {}", id.simple()),
            roles: vec![role],
            account_id: None,
        };
        self.user(id, register).await;
        let limit = UserCommand::SetApprovalLimit {
            amount: Decimal::from(1_000_000),
            currency: "EUR".to_owned(),
        };
        self.user(id, limit).await;
        Actor::user(id, vec![role])
    }

    /// Opens a Prospect account (EUR, Standard tier).
    pub async fn account(&self) -> Uuid {
        let id = Uuid::new_v4();
        self.stack.accounts().open(id, "Acme").await;
        id
    }

    /// Drafts a quote with one line of `unit_price` EUR, valid for `valid_for`.
    pub async fn draft_quote(
        &self,
        account_id: Uuid,
        unit_price: i64,
        valid_for: chrono::Duration,
    ) -> Uuid {
        let id = Uuid::new_v4();
        let operator = self.operator();
        let valid_until = self.now().await + valid_for;
        let draft = QuoteCommand::DraftQuote {
            account_id,
            title: "Widgets".to_owned(),
            valid_until,
        };
        self.quote(&operator, id, draft).await;
        let line = QuoteCommand::AddLineItem {
            line_id: Uuid::new_v4(),
            sku: "W-1".to_owned(),
            description: "Widget".to_owned(),
            quantity: Decimal::ONE,
            unit: Unit::Hour,
            unit_price: Decimal::from(unit_price),
        };
        self.quote(&operator, id, line).await;
        id
    }

    pub async fn stream(&self, aggregate_type: &str, id: Uuid) -> Vec<StoredEvent> {
        stream_range(
            &self.stack.admin,
            aggregate_type,
            &id.to_string(),
            0,
            i64::MAX,
        )
        .await
        .expect("read stream")
    }

    pub async fn event_types(&self, aggregate_type: &str, id: Uuid) -> Vec<String> {
        self.stream(aggregate_type, id)
            .await
            .into_iter()
            .map(|e| e.event_type)
            .collect()
    }

    /// Waits until the stream holds an event of `event_type`.
    pub async fn wait_for(&self, aggregate_type: &str, id: Uuid, event_type: &str) -> StoredEvent {
        eventually(
            &format!("{event_type} on {aggregate_type} {id}"),
            || async {
                self.stream(aggregate_type, id)
                    .await
                    .into_iter()
                    .find(|e| e.event_type == event_type)
            },
        )
        .await
    }

    /// Every stored event, in global order.
    pub async fn all_events(&self) -> Vec<StoredEvent> {
        sqlx::query_as(
            "select global_position, aggregate_type, aggregate_id, sequence, event_type, \
             event_version, payload, metadata, tenant_id, recorded_at from events \
             order by global_position",
        )
        .fetch_all(&self.stack.admin)
        .await
        .expect("read events")
    }

    /// Ids of the streams of one aggregate type.
    pub async fn stream_ids(&self, aggregate_type: &str) -> Vec<String> {
        sqlx::query_scalar(
            "select distinct aggregate_id from events where aggregate_type = $1 order by 1",
        )
        .bind(aggregate_type)
        .fetch_all(&self.stack.admin)
        .await
        .expect("read stream ids")
    }

    /// Waits until the timer scheduling's checkpoint is at the last event it subscribes to of
    /// every stream: everything delivered so far is processed.
    pub async fn processed_everything(&self) {
        let (_, subscribed) = projections::process::subscriptions_by_process()
            .into_iter()
            .find(|(name, _)| *name == TimerScheduling::NAME)
            .expect("the timer scheduling subscribes");
        eventually("process managers caught up", || async {
            let behind: i64 = sqlx::query_scalar(
                "select count(*) from (select aggregate_type, aggregate_id, max(sequence) as last \
                 from events where aggregate_type || '.' || event_type = any($1) \
                 group by 1, 2) s \
                 where exists (select 1 from projection_checkpoints c where c.projection = 'process.timers' \
                   and (c.aggregate_type, c.aggregate_id) = (s.aggregate_type, s.aggregate_id) \
                   and c.last_sequence < s.last) \
                 or not exists (select 1 from projection_checkpoints c where c.projection = 'process.timers' \
                   and (c.aggregate_type, c.aggregate_id) = (s.aggregate_type, s.aggregate_id))",
            )
            .bind(&subscribed)
            .fetch_one(&self.stack.admin)
            .await
            .expect("compare checkpoints");
            (behind == 0).then_some(())
        })
        .await
    }

    /// Waits until the group's queues hold no ready message.
    pub async fn queues_drained(&self) {
        eventually("process-manager queues drained", || async {
            let ready = self.ready_messages().await;
            (ready == 0).then_some(())
        })
        .await;
    }

    async fn ready_messages(&self) -> u32 {
        let connection = Connection::connect(&self.stack.amqp_url, ConnectionProperties::default())
            .await
            .expect("reach RabbitMQ");
        let channel = connection.create_channel().await.expect("open channel");
        let mut ready = 0;
        for partition in 0..self.stack.topology.partitions {
            let options = QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            };
            let queue = self.stack.topology.group_queue(PROCESS_MANAGERS, partition);
            let declared = channel
                .queue_declare(queue.into(), options, FieldTable::default())
                .await
                .expect("queue exists");
            ready += declared.message_count();
        }
        connection.close(200, "done".into()).await.ok();
        ready
    }

    pub async fn parked(&self) -> u32 {
        projections::parked_count(&self.stack.amqp_url, &self.stack.topology, PROCESS_MANAGERS)
            .await
            .expect("count parked messages")
    }

    pub async fn tear_down(mut self) {
        for task in [self.processes.take(), self.timers.take()]
            .into_iter()
            .flatten()
        {
            task.abort();
            let _ = task.await;
        }
        self.pool.close().await;
        self.delete_group().await;
        self.stack.tear_down().await;
    }

    async fn delete_group(&self) {
        let topology = &self.stack.topology;
        let connection = Connection::connect(&self.stack.amqp_url, ConnectionProperties::default())
            .await
            .expect("reach RabbitMQ");
        let channel = connection.create_channel().await.expect("open channel");
        let mut queues: Vec<String> = (0..topology.partitions)
            .map(|p| topology.group_queue(PROCESS_MANAGERS, p))
            .collect();
        queues.push(topology.parked_queue(PROCESS_MANAGERS));
        for queue in queues {
            let _ = channel
                .queue_delete(queue.into(), QueueDeleteOptions::default())
                .await;
        }
        for exchange in [
            topology.group_exchange(PROCESS_MANAGERS),
            topology.parked_exchange(PROCESS_MANAGERS),
        ] {
            let _ = channel
                .exchange_delete(exchange.into(), ExchangeDeleteOptions::default())
                .await;
        }
        connection.close(200, "done".into()).await.ok();
    }
}
