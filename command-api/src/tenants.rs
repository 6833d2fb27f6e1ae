//! Creating a tenant with its first TenantAdmin (`b2b tenant create`).
use sqlx::PgPool;
use uuid::Uuid;

use aggregates::{DomainError, Email, Text};

#[derive(Debug, thiserror::Error)]
pub enum TenantError {
    #[error(transparent)]
    Invalid(#[from] DomainError),
    #[error("the password must be at least 12 characters")]
    WeakPassword,
    #[error("a tenant with slug `{0}` already exists")]
    SlugTaken(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Hashing(#[from] auth::AuthError),
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

pub async fn create_tenant(
    pool: &PgPool,
    new: NewTenant<'_>,
) -> Result<CreatedTenant, TenantError> {
    let name = Text::parse("name", new.name, 200)?;
    let email = Email::parse("admin_email", new.admin_email)?;
    if new.admin_password.chars().count() < 12 {
        return Err(TenantError::WeakPassword);
    }
    let password_hash = auth::hash_password(new.admin_password)?;
    let tenant_id = Uuid::new_v4();
    let admin_user_id = Uuid::new_v4();
    let mut tx = pool.begin().await?;
    let inserted = sqlx::query(
        "insert into tenants (id, slug, name) values ($1, $2, $3) on conflict (slug) do nothing",
    )
    .bind(tenant_id)
    .bind(new.slug)
    .bind(name.as_str())
    .execute(&mut *tx)
    .await?;
    if inserted.rows_affected() == 0 {
        return Err(TenantError::SlugTaken(new.slug.to_owned()));
    }
    sqlx::query(
        "insert into user_credentials (user_id, tenant_id, email, password_hash, roles) \
         values ($1, $2, $3, $4, array['TenantAdmin'])",
    )
    .bind(admin_user_id)
    .bind(tenant_id)
    .bind(email.as_str())
    .bind(password_hash)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(CreatedTenant {
        tenant_id,
        admin_user_id,
    })
}
