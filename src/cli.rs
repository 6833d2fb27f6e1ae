use clap::{Parser, Subcommand};
use secrecy::ExposeSecret;

use crate::audit;
use crate::config::{Config, Settings};
use crate::projections_cli::{self, ProjectionsCommand};
use crate::startup::{Application, Parts};

#[derive(Parser)]
#[command(
    name = "b2b",
    version,
    about = "Event-sourced B2B sales operations backend"
)]
pub struct Cli {
    #[command(subcommand)]
    pub action: Action,
    #[command(flatten)]
    pub settings: Settings,
}

#[derive(Subcommand)]
pub enum Action {
    /// Everything in one process: both APIs, the relay, the projectors, the process managers
    /// and the timer worker.
    Serve,
    /// Only the command API (HTTP).
    CommandApi,
    /// Only the GraphQL query API (HTTP).
    QueryApi,
    /// Only the relay (event store → RabbitMQ; one active instance holding a lease).
    Relay,
    /// Only the event consumers: read-model projectors (RabbitMQ → read schema), process
    /// managers (RabbitMQ → commands) and the timer worker (`scheduled_commands` → commands).
    Projector,
    /// Applies database migrations.
    Migrate,
    /// Tenant administration.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Event history for auditors.
    #[command(subcommand)]
    Events(EventsCommand),
    /// Proof that no stored event was altered or removed.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Read-model operations: rebuild, status, parked messages.
    #[command(subcommand)]
    Projections(ProjectionsCommand),
}

#[derive(Subcommand)]
pub enum EventsCommand {
    /// Writes a tenant's events to stdout as NDJSON, in commit order.
    Export {
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
        /// Only events recorded at or after this time (RFC 3339).
        #[arg(long)]
        from: Option<chrono::DateTime<chrono::Utc>>,
        /// Only events recorded before this time (RFC 3339).
        #[arg(long)]
        to: Option<chrono::DateTime<chrono::Utc>>,
        /// Only events of this aggregate type (Account, User, Quote, Approval, Contract, Tenant).
        #[arg(long)]
        aggregate_type: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Checks every stream's hash chain and each tenant's latest signed checkpoint; exits
    /// non-zero naming the first bad event.
    Verify {
        /// Tenant slug; every tenant when omitted.
        #[arg(long)]
        tenant: Option<String>,
        /// The key checkpoints must be signed with (base64 or PEM, or a file holding it);
        /// the configured signing key's own when omitted.
        #[arg(long)]
        public_key: Option<String>,
    },
    /// Signs a checkpoint of each tenant's history now (the worker does it periodically).
    Checkpoint {
        /// Tenant slug; every tenant when omitted.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Prints the public key of the configured signing key (base64), for verifiers.
    PublicKey,
    /// Checks an export offline: its checkpoint's signature, every event's hash, and that it
    /// holds every event up to its checkpoint. Needs no database or configuration.
    VerifyExport {
        /// The NDJSON file `b2b events export` wrote.
        file: std::path::PathBuf,
        /// The key the checkpoint must be signed with (base64 or PEM, or a file holding it).
        #[arg(long)]
        public_key: String,
    },
}

#[derive(Subcommand)]
pub enum TenantCommand {
    /// Creates a tenant and its first TenantAdmin.
    Create {
        #[arg(long)]
        slug: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        admin_email: String,
        #[arg(long)]
        admin_password: String,
    },
    /// Replaces a tenant's rule configuration (approval threshold and chains, volume
    /// discounts, SLA) with the JSON in FILE; see `tenant policy` for the shape. Each change is
    /// a `TenantPolicySet` event in the tenant's `Tenant` stream, naming who made it.
    SetPolicy {
        #[arg(long)]
        slug: String,
        #[arg(long)]
        file: std::path::PathBuf,
        /// Who makes the change, recorded with the event (default: the OS login).
        #[arg(long)]
        by: Option<String>,
    },
    /// Prints the rule configuration a tenant's rules apply, as JSON.
    Policy {
        #[arg(long)]
        slug: String,
    },
}

pub async fn run(action: Action, settings: Settings) -> anyhow::Result<()> {
    // An auditor checks an export offline, with no deployment's configuration at hand.
    if let Action::Audit(AuditCommand::VerifyExport { file, public_key }) = &action {
        return audit::verify_export(file, public_key);
    }
    let config = Config::from_settings(settings)?;
    let parts = match action {
        Action::Migrate => return migrate(&config).await,
        Action::Tenant(TenantCommand::Create {
            slug,
            name,
            admin_email,
            admin_password,
        }) => {
            let new = command_api::tenants::NewTenant {
                slug: &slug,
                name: &name,
                admin_email: &admin_email,
                admin_password: &admin_password,
            };
            return create_tenant(&config, new).await;
        }
        Action::Tenant(TenantCommand::SetPolicy { slug, file, by }) => {
            return set_policy(&config, &slug, &file, by).await
        }
        Action::Tenant(TenantCommand::Policy { slug }) => return show_policy(&config, &slug).await,
        Action::Events(EventsCommand::Export {
            tenant,
            from,
            to,
            aggregate_type,
        }) => return audit::export(&config, &tenant, from, to, aggregate_type).await,
        Action::Audit(command) => return audit::run(command, &config).await,
        Action::Projections(command) => return projections_cli::run(command, &config).await,
        Action::Serve => Parts::ALL,
        Action::CommandApi => Parts::COMMAND_API,
        Action::QueryApi => Parts::QUERY_API,
        Action::Relay => Parts::RELAY,
        Action::Projector => Parts::PROJECTOR,
    };
    Application::build(&config, parts)
        .await?
        .run_until_stopped()
        .await
}

async fn migrate(config: &Config) -> anyhow::Result<()> {
    event_store::db::migrate(config.owner_database_url.expose_secret()).await?;
    println!("migrations applied");
    Ok(())
}

async fn create_tenant(
    config: &Config,
    new: command_api::tenants::NewTenant<'_>,
) -> anyhow::Result<()> {
    let pool = event_store::db::connect(config.owner_database_url.expose_secret(), 1).await?;
    let created = command_api::tenants::create_tenant(&pool, new).await?;
    println!(
        "{}",
        serde_json::json!({
            "tenant_id": created.tenant_id,
            "admin_user_id": created.admin_user_id,
        })
    );
    Ok(())
}

async fn set_policy(
    config: &Config,
    slug: &str,
    file: &std::path::Path,
    by: Option<String>,
) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(file)?;
    let policy: aggregates::TenantPolicy = serde_json::from_str(&text)?;
    let by = by
        .or_else(|| std::env::var("USER").ok())
        .or_else(|| std::env::var("LOGNAME").ok())
        .unwrap_or_else(|| "unknown".to_owned());
    let pool = event_store::db::connect(config.owner_database_url.expose_secret(), 1).await?;
    let version = command_api::tenants::set_policy(&pool, slug, &policy, &by).await?;
    println!("policy of tenant {slug} set (its Tenant stream is at version {version})");
    Ok(())
}

async fn show_policy(config: &Config, slug: &str) -> anyhow::Result<()> {
    let pool = event_store::db::connect(config.owner_database_url.expose_secret(), 1).await?;
    let policy = command_api::tenants::policy(&pool, slug).await?;
    println!("{}", serde_json::to_string_pretty(&policy)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        // Flags of the configuration are global: none may clash with a subcommand's own.
        super::Cli::command().debug_assert();
    }
}
