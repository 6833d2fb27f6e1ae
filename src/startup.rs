//! Builds the processes: which parts one runs (the HTTP server from `http`, the background
//! workers), and how it runs until something stops.
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use anyhow::Context;
use event_store::broker::BrokerHealth;
use event_store::db::Plans;
use event_store::relay::{self, RelayConfig};
use event_store::{Clock, CommandBus, Invalidation, Invalidations, Topology};
use projections::process::ProcessIds;
use projections::timers::TimerConfig;
use query_api::await_version::ProjectedSignals;
use query_api::subscriptions::SubscriptionHub;
use secrecy::ExposeSecret;
use sqlx::PgPool;

use crate::config::{Config, SecretUrl};
use crate::http::{http_server, metrics_server, Probes};
use crate::supervisor::{self, Health, Workers};

/// Which parts one process runs. `projector` is every event consumer: the read models, the
/// process managers and the timer worker.
#[derive(Debug, Clone, Copy)]
pub struct Parts {
    pub(crate) command_api: bool,
    pub(crate) query_api: bool,
    relay: bool,
    projector: bool,
}

impl Parts {
    pub const ALL: Self = Self {
        command_api: true,
        query_api: true,
        relay: true,
        projector: true,
    };
    pub const COMMAND_API: Self = Self {
        command_api: true,
        ..Self::NONE
    };
    pub const QUERY_API: Self = Self {
        query_api: true,
        ..Self::NONE
    };
    pub const RELAY: Self = Self {
        relay: true,
        ..Self::NONE
    };
    pub const PROJECTOR: Self = Self {
        projector: true,
        ..Self::NONE
    };
    const NONE: Self = Self {
        command_api: false,
        query_api: false,
        relay: false,
        projector: false,
    };

    fn serves_http(self) -> bool {
        self.command_api || self.query_api
    }
}

/// The process's connections, by login: the APIs log in as `DATABASE_URL` (`b2b_api`), the
/// relay and the projector as `WORKER_DATABASE_URL` (`b2b_worker`, which also reads every
/// tenant's events and timers); `b2b serve` holds both. Neither may act past row-level security.
struct Pools {
    api: Option<PgPool>,
    worker: Option<PgPool>,
    /// The query API's reads, on a streaming standby (`DATABASE_READ_URL`).
    standby: Option<PgPool>,
}

impl Pools {
    async fn connect(config: &Config, parts: Parts) -> anyhow::Result<Self> {
        let api = match parts.serves_http() {
            true => Some(service_pool("DATABASE_URL", &config.database_url, Plans::Cached).await?),
            false => None,
        };
        let worker = match parts.relay || parts.projector {
            true => Some(
                service_pool(
                    "WORKER_DATABASE_URL",
                    &config.worker_database_url,
                    Plans::PerExecution,
                )
                .await?,
            ),
            false => None,
        };
        let standby = match (&config.read_database_url, parts.query_api) {
            (Some(url), true) => Some(service_pool("DATABASE_READ_URL", url, Plans::Cached).await?),
            _ => None,
        };
        Ok(Self {
            api,
            worker,
            standby,
        })
    }

    fn any(&self) -> &PgPool {
        self.api
            .as_ref()
            .or(self.worker.as_ref())
            .expect("every process runs an API or a worker")
    }

    fn worker(&self) -> anyhow::Result<&PgPool> {
        self.worker
            .as_ref()
            .context("no worker connections in this process")
    }
}

/// A pool of a service login, refused when that login could act past row-level security.
async fn service_pool(variable: &str, url: &SecretUrl, plans: Plans) -> anyhow::Result<PgPool> {
    let pool = event_store::db::connect_with_plans(url.expose_secret(), 20, plans)
        .await
        .with_context(|| format!("connecting to Postgres as {variable} says"))?;
    if event_store::db::login_is_privileged(&pool).await? {
        anyhow::bail!(
            "{variable} logs in as a superuser, or as a role that owns the schema or may become \
             its owner; services log in as b2b_api (DATABASE_URL) and b2b_worker \
             (WORKER_DATABASE_URL), which own nothing; the owner is DATABASE_OWNER_URL"
        );
    }
    Ok(pool)
}

pub struct Application {
    server: Option<Server>,
    workers: Workers,
    health: Health,
    drain: Duration,
}

impl Application {
    pub async fn build(config: &Config, parts: Parts) -> anyhow::Result<Self> {
        // The relay's process, which every deployment runs, also signs audit checkpoints: it
        // does not start without the key.
        let audit_key = parts.relay.then(|| config.audit_key()).transpose()?;
        // Before any worker starts, or what it records first goes nowhere.
        let recorder = crate::telemetry::install_metrics()?;
        let pools = Pools::connect(config, parts).await?;
        // The relay and the consumers cannot work without the broker: say so now, by name,
        // rather than retry in the background while looking healthy.
        if parts.relay || parts.projector {
            event_store::broker::check(config.amqp_url.expose_secret()).await?;
        }
        // What every service login may do: commands, the clock, invalidations, metrics.
        let pool = pools.any().clone();
        let topology = Topology {
            prefix: config.amqp_prefix.clone(),
            partitions: config.partitions,
            // Every group's queues must exist before the relay publishes, or events are lost
            // to the groups not yet declared.
            groups: vec![
                projections::READ_MODELS.to_owned(),
                projections::PROCESS_MANAGERS.to_owned(),
                webhooks::WEBHOOKS.to_owned(),
            ],
            routing: projections::routing(),
        };
        // One bus per process: the command API, the process managers and the timers share its
        // stream caches, and a relay here hears its commits.
        let bus = Arc::new(CommandBus::with_options(pool.clone(), config.bus));
        // One clock for commands, process managers and timers, so a test that moves time
        // moves it for all of them.
        let clock =
            event_store::clock::clock_from_setting(&config.clock, &config.app_env, pool.clone())?;
        let mut workers = Workers::new(config.test_panic_worker.clone());
        // Fed by the relay's and the consumers' connections; read by `/health/ready`.
        let broker_health = BrokerHealth::default();
        if parts.relay {
            let relay = RelayConfig {
                lease: config.relay_lease,
                broker_health: broker_health.clone(),
                ..RelayConfig::new(config.amqp_url.expose_secret().to_owned(), topology.clone())
            };
            let stop = workers.stop_token();
            let relay = relay::run(pools.worker()?.clone(), relay, bus.committed(), stop);
            workers.spawn("relay", relay);
        }
        if let Some(key) = audit_key {
            let every = config.audit_checkpoint_interval;
            let worker = pools.worker()?.clone();
            let checkpoints = event_store::audit::run_checkpoints(worker, key.clone(), every);
            workers.spawn_until_stopped("audit checkpoint worker", checkpoints);
        }
        if parts.projector {
            let worker = pools.worker()?;
            let ids = ProcessIds::load(worker).await?;
            let shared = (&bus, ids, &broker_health);
            consumers(config, &topology, worker, shared, &clock, &mut workers);
        }
        let identity = match parts.serves_http() {
            true => Some(identity(config, &pool)?),
            false => None,
        };
        let signals = Arc::new(ProjectedSignals::new(config.await_max_waiters));
        let subscriptions = SubscriptionHub::new(config.subscriptions);
        let invalidations = invalidations(&pool, identity.clone(), &bus)
            .on_change({
                let signals = signals.clone();
                move |change| signals.hear(change)
            })
            .on_change({
                let subscriptions = subscriptions.clone();
                move |change| subscriptions.hear(change)
            });
        if parts.query_api {
            // On the primary, where the announced commits are (a standby may lag them).
            let dispatch = subscriptions.clone().dispatch(pool.clone());
            workers.spawn_until_stopped("subscription dispatcher", dispatch);
        }
        let invalidations = Arc::new(invalidations);
        workers.spawn_until_stopped("invalidation listener", invalidations.clone().run());
        let upkeep = recorder.clone();
        let metrics = metrics_server(config, pool.clone(), recorder)?;
        let stop = workers.stop_token();
        workers.spawn("metrics server", async move {
            let handle = metrics.handle();
            // Histogram samples are folded into their buckets here, not only when scraped.
            let upkeep = async {
                loop {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    upkeep.run_upkeep();
                }
            };
            tokio::select! {
                served = metrics => if let Err(error) = served {
                    tracing::error!(%error, "the metrics server stopped");
                },
                () = upkeep => {}
                () = stop.cancelled() => handle.stop(true).await,
            }
        });
        if parts.command_api {
            let sweep = event_store::idempotency::run_sweeper(pool.clone(), config.receipt_sweep);
            workers.spawn_until_stopped("idempotency sweeper", sweep);
        }
        let health = Health::default();
        let server = match identity {
            Some(identity) => {
                let commands = command_api::CommandApi::new(pool.clone(), identity.clone(), bus)
                    .with_test_faults(config.test_faults)
                    .with_invalidations(invalidations)
                    .with_clock(clock)
                    .with_trusted_proxies(config.trusted_proxies.clone())
                    .with_webhook_reach(config.webhooks.reach);
                let queries = query_api::QueryApi::new(
                    pool.clone(),
                    identity,
                    projections::projections_fed_by,
                )
                .with_await_timeout(config.await_timeout)
                .with_await_signals(signals)
                .with_subscriptions(subscriptions);
                let queries = match pools.standby.clone() {
                    Some(standby) => queries.with_standby_reads(standby),
                    None => queries,
                };
                let probes = Probes::new(pool, config, (health.clone(), broker_health));
                Some(http_server(config, parts, probes, commands, queries)?)
            }
            None => None,
        };
        Ok(Self {
            server,
            workers,
            health,
            drain: config.shutdown_drain,
        })
    }

    /// Runs until SIGTERM or SIGINT (then stops in order and returns `Ok`) or until any worker
    /// ends (then stops the same way and returns the error naming it); see [`supervisor`].
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        supervisor::run(self.server, self.workers, &self.health, self.drain).await
    }
}

/// The read-model projector, the process managers, the webhooks' consumer group and delivery
/// worker, and the timer worker.
fn consumers(
    config: &Config,
    topology: &Topology,
    pool: &PgPool,
    (bus, ids, broker_health): (&Arc<CommandBus>, ProcessIds, &BrokerHealth),
    clock: &Arc<dyn Clock>,
    workers: &mut Workers,
) {
    let consumer = |group: &str| projections::ProjectorConfig {
        amqp_url: config.amqp_url.expose_secret().to_owned(),
        topology: topology.clone(),
        group: group.to_owned(),
        prefetch: 64,
        broker_health: broker_health.clone(),
    };
    let read_models = projections::run(
        pool.clone(),
        consumer(projections::READ_MODELS),
        projections::read_models(),
        workers.stop_token(),
    );
    workers.spawn("read-model projector", read_models);
    let processes = projections::run(
        pool.clone(),
        consumer(projections::PROCESS_MANAGERS),
        projections::process_managers(bus.clone(), ids, clock.clone()),
        workers.stop_token(),
    );
    workers.spawn("process managers", processes);
    let outbox = projections::run(
        pool.clone(),
        consumer(webhooks::WEBHOOKS),
        vec![Arc::new(webhooks::WebhookOutbox)],
        workers.stop_token(),
    );
    workers.spawn("webhook outbox", outbox);
    let sender = webhooks::sender::run(pool.clone(), config.webhooks.clone(), workers.stop_token());
    workers.spawn("webhook delivery worker", sender);
    let timer_config = TimerConfig {
        poll_interval: config.timer_poll_interval,
        ..TimerConfig::default()
    };
    let timers = projections::timers::run(
        pool.clone(),
        bus.clone(),
        clock.clone(),
        (timer_config, workers.stop_token()),
    );
    workers.spawn("timer worker", timers);
}

/// The caches of this process, told of every change by one listener.
fn invalidations(
    pool: &PgPool,
    identity: Option<auth::Identity>,
    bus: &CommandBus,
) -> Invalidations {
    let policies = bus.policies();
    let invalidations =
        Invalidations::new(pool.clone()).on_change(move |change| policies.hear(change));
    match identity {
        Some(identity) => invalidations.on_change(move |change| match change {
            Invalidation::Live(live) => identity.set_cache_live(live),
            Invalidation::Changed {
                kind: "session",
                id,
            } => identity.forget_session(id),
            Invalidation::Changed { kind: "user", id } => identity.forget_user(id),
            Invalidation::Changed {
                kind: "api_key",
                id,
            } => identity.forget_api_key(id),
            Invalidation::Changed { .. } => {}
        }),
        None => invalidations,
    }
}

fn identity(config: &Config, pool: &PgPool) -> anyhow::Result<auth::Identity> {
    let ttl = chrono::Duration::from_std(config.access_token_ttl)?;
    let keys = auth::TokenKeys::new(config.jwt_secret.expose_secret(), ttl);
    Ok(auth::Identity::new(
        pool.clone(),
        keys,
        config.identity.clone(),
    ))
}
