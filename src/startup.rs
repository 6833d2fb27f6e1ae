//! Builds the processes: which parts one runs (the HTTP server from `http`, the background
//! workers), and how it runs until something stops.
use std::sync::Arc;

use actix_web::dev::Server;
use anyhow::Context;
use event_store::relay::{self, RelayConfig};
use event_store::{Clock, CommandBus, Invalidation, Invalidations, Topology};
use projections::process::ProcessIds;
use projections::timers::TimerConfig;
use query_api::await_version::ProjectedSignals;
use sqlx::PgPool;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::http::{http_server, metrics_server};

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

/// A background task, named so that the one that stops can be reported.
type Worker = (&'static str, JoinHandle<()>);

/// The process's connections, by login: the APIs log in as `DATABASE_URL` (`b2b_api`), the
/// relay and the projector as `WORKER_DATABASE_URL` (`b2b_worker`, which also reads every
/// tenant's events and timers); `b2b serve` holds both. Neither may act past row-level security.
struct Pools {
    api: Option<PgPool>,
    worker: Option<PgPool>,
}

impl Pools {
    async fn connect(config: &Config, parts: Parts) -> anyhow::Result<Self> {
        let api = match parts.serves_http() {
            true => Some(service_pool("DATABASE_URL", &config.database_url).await?),
            false => None,
        };
        let worker = match parts.relay || parts.projector {
            true => Some(service_pool("WORKER_DATABASE_URL", &config.worker_database_url).await?),
            false => None,
        };
        Ok(Self { api, worker })
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
async fn service_pool(variable: &str, url: &str) -> anyhow::Result<PgPool> {
    let pool = event_store::db::connect(url, 20)
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
    workers: Vec<Worker>,
}

impl Application {
    pub async fn build(config: &Config, parts: Parts) -> anyhow::Result<Self> {
        // The relay's process, which every deployment runs, also signs audit checkpoints: it
        // does not start without the key.
        let audit_key = parts.relay.then(|| config.audit_key()).transpose()?;
        let pools = Pools::connect(config, parts).await?;
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
        let mut workers = Vec::new();
        if parts.relay {
            let relay = RelayConfig {
                lease: config.relay_lease,
                ..RelayConfig::new(config.amqp_url.clone(), topology.clone())
            };
            let relay = relay::run(pools.worker()?.clone(), relay, bus.committed());
            workers.push(("relay", tokio::spawn(relay)));
        }
        if let Some(key) = audit_key {
            let every = config.audit_checkpoint_interval;
            let worker = pools.worker()?.clone();
            let checkpoints = event_store::audit::run_checkpoints(worker, key.clone(), every);
            workers.push(("audit checkpoint worker", tokio::spawn(checkpoints)));
        }
        if parts.projector {
            let worker = pools.worker()?;
            let ids = ProcessIds::load(worker).await?;
            workers.extend(consumers(config, &topology, worker, (&bus, ids), &clock));
        }
        let identity = match parts.serves_http() {
            true => Some(identity(config, &pool)?),
            false => None,
        };
        let signals = Arc::new(ProjectedSignals::new(config.await_max_waiters));
        let invalidations = invalidations(&pool, identity.clone(), &bus).on_change({
            let signals = signals.clone();
            move |change| signals.hear(change)
        });
        let invalidations = Arc::new(invalidations);
        workers.push((
            "invalidation listener",
            tokio::spawn(invalidations.clone().run()),
        ));
        let metrics = metrics_server(config, pool.clone())?;
        workers.push((
            "metrics server",
            tokio::spawn(async move {
                if let Err(error) = metrics.await {
                    tracing::error!(%error, "the metrics server stopped");
                }
            }),
        ));
        if parts.command_api {
            let sweep = event_store::idempotency::run_sweeper(pool.clone(), config.receipt_sweep);
            workers.push(("idempotency sweeper", tokio::spawn(sweep)));
        }
        let server = match identity {
            Some(identity) => {
                let commands = command_api::CommandApi::new(pool.clone(), identity.clone(), bus)
                    .with_test_faults(config.test_faults)
                    .with_invalidations(invalidations)
                    .with_clock(clock)
                    .with_trusted_proxies(config.trusted_proxies.clone());
                let queries = query_api::QueryApi::new(
                    pool.clone(),
                    identity,
                    projections::projections_fed_by,
                )
                .with_await_timeout(config.await_timeout)
                .with_await_signals(signals);
                Some(http_server(config, parts, pool, commands, queries)?)
            }
            None => None,
        };
        Ok(Self { server, workers })
    }

    /// Runs until the server stops (or, for worker-only processes, Ctrl-C / SIGTERM), or until
    /// any worker stops: workers run forever, so one that ends (a panic, say) ends the process
    /// with its name, for the supervisor to restart it whole rather than run on without it.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let (names, handles): (Vec<&str>, Vec<JoinHandle<()>>) = self.workers.into_iter().unzip();
        let aborts: Vec<_> = handles.iter().map(JoinHandle::abort_handle).collect();
        // Never empty: the invalidation listener and the metrics server always run.
        let any_worker = async {
            let (outcome, index, _) = futures::future::select_all(handles).await;
            (names[index], outcome)
        };
        let serving = async {
            match self.server {
                Some(server) => server.await,
                None => {
                    shutdown_signal().await;
                    Ok(())
                }
            }
        };
        let stopped = tokio::select! {
            served = serving => served.context("the HTTP server failed"),
            (name, outcome) = any_worker => match outcome {
                Ok(()) => Err(anyhow::anyhow!("the {name} stopped")),
                Err(error) => Err(anyhow::anyhow!("the {name} failed: {error}")),
            },
        };
        for abort in aborts {
            abort.abort();
        }
        stopped
    }
}

/// The read-model projector, the process managers and the timer worker.
fn consumers(
    config: &Config,
    topology: &Topology,
    pool: &PgPool,
    (bus, ids): (&Arc<CommandBus>, ProcessIds),
    clock: &Arc<dyn Clock>,
) -> Vec<Worker> {
    let consumer = |group: &str| projections::ProjectorConfig {
        amqp_url: config.amqp_url.clone(),
        topology: topology.clone(),
        group: group.to_owned(),
        prefetch: 64,
    };
    let read_models = projections::run(
        pool.clone(),
        consumer(projections::READ_MODELS),
        projections::read_models(),
    );
    let processes = projections::run(
        pool.clone(),
        consumer(projections::PROCESS_MANAGERS),
        projections::process_managers(bus.clone(), ids, clock.clone()),
    );
    let timer_config = TimerConfig {
        poll_interval: config.timer_poll_interval,
        ..TimerConfig::default()
    };
    let timers = projections::timers::run(pool.clone(), bus.clone(), clock.clone(), timer_config);
    vec![
        ("read-model projector", tokio::spawn(read_models)),
        ("process managers", tokio::spawn(processes)),
        ("timer worker", tokio::spawn(timers)),
    ]
}

async fn shutdown_signal() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
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
    let keys = auth::TokenKeys::new(&config.jwt_secret, ttl);
    Ok(auth::Identity::new(
        pool.clone(),
        keys,
        config.identity.clone(),
    ))
}
