//! Creating a tenant with its first TenantAdmin (`b2b tenant create`).
use sqlx::PgPool;
use uuid::Uuid;

use aggregates::tenant::{Tenant, TenantCommand};
use aggregates::user::{User, UserCommand};
use aggregates::{Actor, Command, DomainError, Email, Role, TenantPolicy, Text};
use chrono::Utc;
use event_store::{AlongsideEvents, CommandBus, Credential, EventMetadata, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum TenantError {
    #[error(transparent)]
    Invalid(#[from] DomainError),
    #[error("a tenant with slug `{0}` already exists")]
    SlugTaken(String),
    #[error("no tenant `{0}`")]
    UnknownTenant(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Password(#[from] auth::AuthError),
    #[error("storing the admin's password failed: {0}")]
    Credentials(String),
    #[error("storing the tenant's event failed: {0}")]
    Store(#[from] StoreError),
}

pub struct NewTenant<'a> {
    pub slug: &'a str,
    pub name: &'a str,
    pub admin_email: &'a str,
    pub admin_password: &'a str,
}

pub struct CreatedTenant {
    pub tenant_id: Uuid,
    pub admin_user_id: Uuid,
}

/// The tenant row, then its first TenantAdmin registered as a User event (issued by the system,
/// as no user of the tenant exists yet) with the admin's password hash.
pub async fn create_tenant(
    pool: &PgPool,
    new: NewTenant<'_>,
) -> Result<CreatedTenant, TenantError> {
    let name = Text::parse("name", new.name, aggregates::limits::NAME_MAX)?;
    let email = Email::parse("admin_email", new.admin_email)?;
    auth::check_password(new.admin_password)?;
    let tenant_id = Uuid::new_v4();
    let admin_user_id = Uuid::new_v4();
    let inserted = sqlx::query(
        "insert into tenants (id, slug, name) values ($1, $2, $3) on conflict (slug) do nothing",
    )
    .bind(tenant_id)
    .bind(new.slug)
    .bind(name.as_str())
    .execute(pool)
    .await?;
    if inserted.rows_affected() == 0 {
        return Err(TenantError::SlugTaken(new.slug.to_owned()));
    }
    let password_hash = auth::hash_new_password(new.admin_password.to_owned())
        .await
        .map_err(|e| TenantError::Credentials(e.to_string()))?;
    register_admin(pool, tenant_id, admin_user_id, &email, &password_hash).await?;
    Ok(CreatedTenant {
        tenant_id,
        admin_user_id,
    })
}

/// What an operator's CLI command records with its events: the system process it runs as,
/// and the client (the command, and who ran it where that is known).
fn operator_metadata(tenant_id: Uuid, process: &str, client: String) -> EventMetadata {
    let request_id = Uuid::new_v4();
    EventMetadata {
        tenant_id,
        actor: Actor::system(process),
        correlation_id: request_id,
        causation_id: request_id,
        request_id,
        recorded_at: Utc::now(),
        client: Some(client),
        traceparent: None,
        api_key_id: None,
    }
}

async fn register_admin(
    pool: &PgPool,
    tenant_id: Uuid,
    user_id: Uuid,
    email: &Email,
    password_hash: &str,
) -> Result<(), TenantError> {
    let metadata = operator_metadata(tenant_id, "tenant-create", "b2b tenant create".into());
    let command = UserCommand::RegisterUser {
        user_id,
        email: email.as_str().to_owned(),
        display_name: "Tenant administrator".into(),
        roles: vec![Role::TenantAdmin],
        account_id: None,
    };
    let bus = CommandBus::new(pool.clone());
    let alongside = AlongsideEvents {
        receipt: None,
        credential: Some(Credential {
            password_hash,
            keep_session: None,
        }),
    };
    bus.store::<User>()
        .execute_with(
            &user_id.to_string(),
            Command::new(
                tenant_id,
                metadata.actor.clone(),
                metadata.recorded_at,
                command,
            ),
            Some(0),
            &metadata,
            &alongside,
        )
        .await?;
    Ok(())
}

/// Sets a tenant's rule configuration (`b2b tenant set-policy`) as a `TenantPolicySet` event in
/// the tenant's stream, recording `by` as who made the change; `tenant_policies`, which the
/// rules read, follows the stream in the same transaction (migration 0029). Returns the
/// stream's version: unchanged when the policy was already in force.
pub async fn set_policy(
    pool: &PgPool,
    slug: &str,
    policy: &TenantPolicy,
    by: &str,
) -> Result<u64, TenantError> {
    let tenant_id: Uuid = sqlx::query_scalar("select id from tenants where slug = $1")
        .bind(slug)
        .fetch_optional(pool)
        .await?
        .ok_or_else(|| TenantError::UnknownTenant(slug.to_owned()))?;
    let client = format!("b2b tenant set-policy, by {by}");
    let metadata = operator_metadata(tenant_id, "tenant-set-policy", client);
    let command = TenantCommand::SetPolicy {
        policy: policy.clone(),
    };
    let bus = CommandBus::new(pool.clone());
    let version = bus
        .store::<Tenant>()
        .execute(
            &tenant_id.to_string(),
            Command::new(
                tenant_id,
                metadata.actor.clone(),
                metadata.recorded_at,
                command,
            ),
            None,
            &metadata,
        )
        .await
        .map_err(|error| match error {
            StoreError::Rejected(rule) => TenantError::Invalid(rule),
            other => TenantError::Store(other),
        })?;
    Ok(version)
}

/// The policy the rules apply for a tenant: its own, or the defaults.
pub async fn policy(pool: &PgPool, slug: &str) -> Result<TenantPolicy, TenantError> {
    let row: Option<(Option<sqlx::types::Json<TenantPolicy>>,)> = sqlx::query_as(
        "select p.policy from tenants t left join tenant_policies p on p.tenant_id = t.id \
         where t.slug = $1",
    )
    .bind(slug)
    .fetch_optional(pool)
    .await?;
    match row {
        None => Err(TenantError::UnknownTenant(slug.to_owned())),
        Some((stored,)) => Ok(stored.map(|json| json.0).unwrap_or_default()),
    }
}
