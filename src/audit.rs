//! `b2b events export` and `b2b audit …`: thin wrappers over `event_store::audit`.
use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context};
use chrono::{DateTime, SecondsFormat, Utc};
use event_store::audit::keys::{self, VerifyingKey};
use event_store::audit::{self, CheckpointState, ExportFilter, Findings, Outcome, Statement};
use sqlx::PgPool;
use uuid::Uuid;

use crate::cli::AuditCommand;
use crate::config::Config;
use secrecy::ExposeSecret;

/// As the owner: an audit reads every stream of every tenant, past row-level security.
async fn connect(config: &Config) -> anyhow::Result<PgPool> {
    Ok(event_store::db::connect(config.owner_database_url.expose_secret(), 2).await?)
}

async fn tenant_id(pool: &PgPool, slug: &str) -> anyhow::Result<Uuid> {
    sqlx::query_scalar("select id from tenants where slug = $1")
        .bind(slug)
        .fetch_optional(pool)
        .await?
        .with_context(|| format!("no tenant `{slug}`"))
}

async fn tenant_filter(pool: &PgPool, slug: Option<&str>) -> anyhow::Result<Option<Uuid>> {
    match slug {
        Some(slug) => Ok(Some(tenant_id(pool, slug).await?)),
        None => Ok(None),
    }
}

pub async fn export(
    config: &Config,
    tenant: &str,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    aggregate_type: Option<String>,
) -> anyhow::Result<()> {
    let pool = connect(config).await?;
    let filter = ExportFilter {
        tenant_id: tenant_id(&pool, tenant).await?,
        from,
        to,
        aggregate_type,
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let (written, checkpoint) = audit::export(&pool, &filter, &mut out).await?;
    out.flush()?;
    match checkpoint {
        Some(checkpoint) => tracing::info!(
            written,
            tenant,
            checkpoint = checkpoint.number,
            "events exported"
        ),
        None => tracing::warn!(
            written,
            tenant,
            "events exported without a proof: the tenant has no signed checkpoint yet \
             (`b2b audit checkpoint --tenant {tenant}` makes one)"
        ),
    }
    Ok(())
}

pub async fn run(command: AuditCommand, config: &Config) -> anyhow::Result<()> {
    match command {
        AuditCommand::Verify { tenant, public_key } => {
            let trusted = match public_key {
                Some(text) => Some(trusted_key(&text)?),
                None => config.audit_signing_key.as_ref().map(|k| k.verifying_key()),
            };
            verify(config, tenant.as_deref(), trusted.as_ref()).await
        }
        AuditCommand::Checkpoint { tenant } => checkpoint(config, tenant.as_deref()).await,
        AuditCommand::PublicKey => {
            println!(
                "{}",
                keys::public_key_text(&config.audit_key()?.verifying_key())
            );
            Ok(())
        }
        AuditCommand::VerifyExport { file, public_key } => verify_export(&file, &public_key),
    }
}

async fn verify(
    config: &Config,
    tenant: Option<&str>,
    trusted: Option<&VerifyingKey>,
) -> anyhow::Result<()> {
    let pool = connect(config).await?;
    let tenant = tenant_filter(&pool, tenant).await?;
    let verification = audit::verify(&pool, tenant, trusted).await?;
    for checkpoint in &verification.checkpoints {
        if let CheckpointState::Refused(problem) = &checkpoint.state {
            bail!("tenant {}: {problem}", checkpoint.slug);
        }
    }
    refuse_findings("hash chain broken", &verification.findings)?;
    println!(
        "ok: {} events, every stream's hash chain intact; {} covered by signed checkpoints",
        verification.findings.events, verification.findings.covered
    );
    for checkpoint in &verification.checkpoints {
        match &checkpoint.state {
            CheckpointState::Trusted(statement) => {
                println!(
                    "tenant {}: {} matches",
                    checkpoint.slug,
                    describe(statement)
                );
            }
            _ => println!(
                "tenant {}: no signed checkpoint yet, so a removed last event or a re-hashed \
                 rewrite could not be found",
                checkpoint.slug
            ),
        }
    }
    Ok(())
}

/// Fails naming the first bad event, and how many more problems there are.
fn refuse_findings(refused: &str, findings: &Findings) -> anyhow::Result<()> {
    let Some(broken) = &findings.first_broken else {
        return Ok(());
    };
    match findings.problems - 1 {
        0 => bail!("{refused}: {broken}"),
        others => bail!("{refused}: {broken} ({others} more problems found)"),
    }
}

fn describe(statement: &Statement) -> String {
    format!(
        "checkpoint {} (made {}, {} events in {} streams, last global position {})",
        statement.number,
        statement.made_at.to_rfc3339_opts(SecondsFormat::Secs, true),
        statement.events,
        statement.streams,
        statement.last_global_position
    )
}

async fn checkpoint(config: &Config, tenant: Option<&str>) -> anyhow::Result<()> {
    let key = config.audit_key()?;
    let pool = connect(config).await?;
    let tenant = tenant_filter(&pool, tenant).await?;
    let mut refused = 0;
    for (tenant, slug) in audit::tenants(&pool, tenant).await? {
        match audit::make_checkpoint(&pool, key, tenant).await? {
            Outcome::Made(statement) => println!("tenant {slug}: signed {}", describe(&statement)),
            Outcome::Current(Some(number)) => {
                println!("tenant {slug}: checkpoint {number} is current (no events since)")
            }
            Outcome::Current(None) => println!("tenant {slug}: no events to sign"),
            Outcome::Busy => println!("tenant {slug}: another process is signing it now"),
            Outcome::Refused(refusal) => {
                eprintln!("tenant {slug}: refused to sign: {refusal}");
                refused += 1;
            }
        }
    }
    if refused > 0 {
        bail!("{refused} tenants' history does not extend what was signed before");
    }
    Ok(())
}

/// A key given as base64 or PEM text, or as a file holding it.
fn trusted_key(given: &str) -> anyhow::Result<VerifyingKey> {
    let text = match Path::new(given).is_file() {
        true => std::fs::read_to_string(given).with_context(|| format!("reading {given}"))?,
        false => given.to_owned(),
    };
    Ok(keys::public_key(&text)?)
}

pub fn verify_export(file: &Path, public_key: &str) -> anyhow::Result<()> {
    let trusted = trusted_key(public_key)?;
    let reader =
        std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let checked = audit::verify_export(std::io::BufReader::new(reader), &trusted)?;
    refuse_findings("export refused", &checked.findings)?;
    if !checked.scope.whole_streams() {
        bail!(
            "export refused: it was cut by time (--from/--to), so it cannot show that no event \
             is missing; export whole streams to verify one"
        );
    }
    let scope = match &checked.scope.aggregate_type {
        Some(only) => format!("{only} streams"),
        None => "streams".to_owned(),
    };
    let findings = &checked.findings;
    println!(
        "ok: the export of tenant {} is intact and complete up to {}: {} events in {} {scope} \
         match its signed heads; {} events after it chain on but are not signed yet",
        checked.checkpoint.tenant_id,
        describe(&checked.checkpoint),
        findings.covered,
        checked.streams_in_scope,
        findings.events - findings.covered
    );
    Ok(())
}
