//! `b2b projections ...`: rebuild a read model without downtime, report lag and parked
//! messages, and replay or drop parked messages.
use std::sync::Arc;

use clap::{Subcommand, ValueEnum};
use event_store::Topology;
use projections::{ParkedAction, PROCESS_MANAGERS, READ_MODELS};

use crate::config::Config;
use secrecy::ExposeSecret;

#[derive(Subcommand)]
pub enum ProjectionsCommand {
    /// Rebuilds a read model from the event store into new tables and swaps them in; queries
    /// keep reading the old tables until then. Names: accounts, users, quotes, approvals,
    /// contracts.
    Rebuild {
        name: String,
        /// Rebuilds only this tenant's rows (its slug or id), leaving every other tenant's as
        /// they are.
        #[arg(long)]
        tenant: Option<String>,
        /// Events read per replay transaction: each is folded in memory and written in a few
        /// statements, so larger batches go faster, at the cost of memory.
        #[arg(long, default_value_t = 10_000)]
        batch_size: i64,
    },
    /// Per consumer group: ready messages per queue, consumers and parked messages; per
    /// projection: streams checkpointed and how far behind the event store; events the relay has not published yet.
    Status {
        /// Prints JSON instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// Replays (back into the group) or drops a consumer group's parked messages.
    Parked {
        /// Consumer group: read-models or process-managers.
        #[arg(long)]
        group: Group,
        #[command(subcommand)]
        action: ParkedCommand,
    },
}

#[derive(Subcommand)]
pub enum ParkedCommand {
    /// Publishes parked messages back to the group's exchange (original headers, so each goes
    /// to its stream's queue); already applied ones are acknowledged as no-ops.
    Replay {
        /// At most this many (default: all parked now).
        #[arg(long)]
        limit: Option<u32>,
    },
    /// Removes parked messages, printing their message ids.
    Drop {
        #[arg(long)]
        limit: Option<u32>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Group {
    ReadModels,
    ProcessManagers,
    Webhooks,
}

impl Group {
    fn name(self) -> &'static str {
        match self {
            Self::ReadModels => READ_MODELS,
            Self::ProcessManagers => PROCESS_MANAGERS,
            Self::Webhooks => webhooks::WEBHOOKS,
        }
    }
}

pub async fn run(command: ProjectionsCommand, config: &Config) -> anyhow::Result<()> {
    match command {
        ProjectionsCommand::Rebuild {
            name,
            tenant,
            batch_size,
        } => rebuild(config, &name, tenant.as_deref(), batch_size).await,
        ProjectionsCommand::Status { json } => status(config, json).await,
        ProjectionsCommand::Parked { group, action } => parked(config, group, action).await,
    }
}

fn topology(config: &Config) -> Topology {
    Topology {
        prefix: config.amqp_prefix.clone(),
        partitions: config.partitions,
        groups: vec![
            READ_MODELS.to_owned(),
            PROCESS_MANAGERS.to_owned(),
            webhooks::WEBHOOKS.to_owned(),
        ],
        routing: projections::routing(),
    }
}

/// Runs as the owner: the rebuild creates, moves and drops tables it must own.
async fn rebuild(
    config: &Config,
    name: &str,
    tenant: Option<&str>,
    batch_size: i64,
) -> anyhow::Result<()> {
    let Some(projection) = projections::read_model(name) else {
        anyhow::bail!("no read model named {name}");
    };
    // The replay reads, folds and writes on a connection each; metrics take the fourth.
    let pool = event_store::db::connect(config.owner_database_url.expose_secret(), 4).await?;
    let scope = match tenant {
        None => projections::RebuildScope::All,
        Some(tenant) => projections::RebuildScope::Tenant(tenant_id(&pool, tenant).await?),
    };
    let _metrics = serve_metrics(config, &pool);
    // At most one progress line a second, on stderr: stdout carries the report. The gauges
    // follow every batch.
    let last = std::sync::Mutex::new(std::time::Instant::now());
    let progress = |progress: &projections::RebuildProgress| {
        record_progress(progress);
        let mut last = last.lock().expect("never poisoned");
        if last.elapsed() >= std::time::Duration::from_secs(1) {
            eprintln!("{progress}");
            *last = std::time::Instant::now();
        }
    };
    let report =
        projections::rebuild(&pool, projection.as_ref(), scope, batch_size, &progress).await?;
    println!(
        "{}",
        serde_json::json!({
            "projection": report.projection,
            "tenant": tenant,
            "replayed": report.replayed,
            "swapped_tail": report.swapped_tail,
            "streams": report.streams,
            "replay_seconds": report.replay_seconds,
            "events_per_second": report.events_per_second(),
            "swap_millis": report.swap_millis,
        })
    );
    Ok(())
}

/// `/metrics` on `METRICS_ADDR` while the rebuild runs, for the progress gauges. A rebuild
/// does not need it: an address in use (a server on the same host) only loses the gauges.
fn serve_metrics(config: &Config, pool: &sqlx::PgPool) -> Option<tokio::task::JoinHandle<()>> {
    let served = crate::telemetry::install_metrics()
        .and_then(|recorder| crate::http::metrics_server(config, pool.clone(), recorder));
    match served {
        Ok(server) => Some(tokio::spawn(async move {
            if let Err(error) = server.await {
                tracing::warn!(%error, "the metrics server stopped");
            }
        })),
        Err(error) => {
            tracing::warn!(%error, "no /metrics for this rebuild");
            None
        }
    }
}

/// The rebuild-progress gauges, by projection (a tenant's rebuild reports as its projection's).
fn record_progress(progress: &projections::RebuildProgress) {
    let labels = [("projection", progress.projection.clone())];
    metrics::gauge!("b2b_rebuild_events_replayed", &labels).set(progress.replayed as f64);
    metrics::gauge!("b2b_rebuild_position", &labels).set(progress.position as f64);
    metrics::gauge!("b2b_rebuild_target_position", &labels).set(progress.total as f64);
    metrics::gauge!("b2b_rebuild_events_per_second", &labels).set(progress.rate);
}

/// The tenant a slug or an id names.
async fn tenant_id(pool: &sqlx::PgPool, slug_or_id: &str) -> anyhow::Result<uuid::Uuid> {
    let found: Option<uuid::Uuid> =
        sqlx::query_scalar("select id from tenants where slug = $1 or id::text = lower($1)")
            .bind(slug_or_id)
            .fetch_optional(pool)
            .await?;
    found.ok_or_else(|| anyhow::anyhow!("no tenant with slug or id {slug_or_id}"))
}

/// Reads every tenant's checkpoints and the relay's, so as the owner too.
async fn status(config: &Config, json: bool) -> anyhow::Result<()> {
    let pool = event_store::db::connect(config.owner_database_url.expose_secret(), 2).await?;
    let groups = [
        (READ_MODELS, projections::read_models()),
        (PROCESS_MANAGERS, process_managers(&pool).await?),
        (
            webhooks::WEBHOOKS,
            vec![Arc::new(webhooks::WebhookOutbox) as _],
        ),
    ];
    let status = projections::status(
        &pool,
        config.amqp_url.expose_secret(),
        &topology(config),
        &groups,
    )
    .await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        println!("{status}");
    }
    Ok(())
}

/// The process managers, only to ask their names and what they handle: nothing runs them here.
async fn process_managers(
    pool: &sqlx::PgPool,
) -> anyhow::Result<Vec<Arc<dyn projections::Projection>>> {
    let bus = Arc::new(event_store::CommandBus::new(pool.clone()));
    let ids = projections::process::ProcessIds::load(pool).await?;
    let clock = Arc::new(event_store::clock::SystemClock);
    Ok(projections::process_managers(bus, ids, clock))
}

async fn parked(config: &Config, group: Group, command: ParkedCommand) -> anyhow::Result<()> {
    let (action, limit) = match command {
        ParkedCommand::Replay { limit } => (ParkedAction::Replay, limit),
        ParkedCommand::Drop { limit } => (ParkedAction::Drop, limit),
    };
    let ids = projections::handle_parked(
        config.amqp_url.expose_secret(),
        &topology(config),
        group.name(),
        action,
        limit,
    )
    .await?;
    for id in &ids {
        println!("{id}");
    }
    let verb = match action {
        ParkedAction::Replay => "replayed",
        ParkedAction::Drop => "dropped",
    };
    eprintln!("{} parked message(s) of {} {verb}", ids.len(), group.name());
    Ok(())
}
