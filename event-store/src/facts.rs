//! The facts aggregates look up through their `Services`: other aggregates' current state, read
//! from their own streams (never from a lagging read model), and tenant policy. Every lookup is
//! scoped to the command's tenant.
use async_trait::async_trait;
use cqrs_es::persist::PersistedEventStore;
use cqrs_es::Aggregate;
use postgres_es::PostgresEventRepository;
use sqlx::PgPool;
use uuid::Uuid;

use aggregates::account::{Account, AccountFacts};
use aggregates::approval::ApprovalServices;
use aggregates::contract::ContractServices;
use aggregates::quote::QuoteServices;
use aggregates::user::{User, UserServices};
use aggregates::{DomainError, Email, TenantPolicy, UserFacts};

use crate::command_bus::load_stream;
use crate::StoreError;

pub struct StoreFacts {
    pool: PgPool,
}

impl StoreFacts {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// The aggregate `id` of this tenant, or `None` if it does not exist there.
    async fn state<A>(
        &self,
        tenant_id: Uuid,
        id: Uuid,
        what: &str,
    ) -> Result<Option<A>, DomainError>
    where
        A: Aggregate<Error = DomainError>,
    {
        let store = PersistedEventStore::<_, A>::new_event_store(PostgresEventRepository::new(
            self.pool.clone(),
        ));
        match load_stream(&store, &id.to_string(), tenant_id).await {
            Ok(context) if context.current_sequence > 0 => Ok(Some(context.aggregate)),
            Ok(_) | Err(StoreError::NotFound) => Ok(None),
            Err(error) => Err(lookup_failed(what, error)),
        }
    }

    async fn account_facts(
        &self,
        tenant_id: Uuid,
        id: Uuid,
    ) -> Result<Option<AccountFacts>, DomainError> {
        let account: Option<Account> = self.state(tenant_id, id, "account").await?;
        Ok(account.and_then(|a| a.facts()))
    }

    async fn tenant_policy(&self, tenant_id: Uuid) -> Result<TenantPolicy, DomainError> {
        let stored: Option<sqlx::types::Json<TenantPolicy>> =
            sqlx::query_scalar("select policy from tenant_policies where tenant_id = $1")
                .bind(tenant_id)
                .fetch_optional(&self.pool)
                .await
                .map_err(|e| lookup_failed("tenant policy", e))?;
        Ok(stored.map(|json| json.0).unwrap_or_default())
    }
}

fn lookup_failed(what: &str, error: impl std::fmt::Display) -> DomainError {
    tracing::error!(%error, what, "fact lookup failed");
    DomainError::LookupFailed(what.to_owned())
}

#[async_trait]
impl QuoteServices for StoreFacts {
    async fn account(
        &self,
        tenant_id: Uuid,
        account_id: Uuid,
    ) -> Result<Option<AccountFacts>, DomainError> {
        self.account_facts(tenant_id, account_id).await
    }

    async fn policy(&self, tenant_id: Uuid) -> Result<TenantPolicy, DomainError> {
        self.tenant_policy(tenant_id).await
    }
}

#[async_trait]
impl ContractServices for StoreFacts {
    async fn account(
        &self,
        tenant_id: Uuid,
        account_id: Uuid,
    ) -> Result<Option<AccountFacts>, DomainError> {
        self.account_facts(tenant_id, account_id).await
    }
}

#[async_trait]
impl ApprovalServices for StoreFacts {
    async fn user(&self, tenant_id: Uuid, user_id: Uuid) -> Result<Option<UserFacts>, DomainError> {
        let user: Option<User> = self.state(tenant_id, user_id, "user").await?;
        Ok(user.and_then(|u| u.facts()))
    }

    async fn policy(&self, tenant_id: Uuid) -> Result<TenantPolicy, DomainError> {
        self.tenant_policy(tenant_id).await
    }
}

/// Tenant-wide user questions are answered from `user_credentials`, which a trigger keeps in step
/// with the User streams inside each append's transaction, so a user registered a moment ago
/// already counts.
#[async_trait]
impl UserServices for StoreFacts {
    async fn email_in_use(
        &self,
        tenant_id: Uuid,
        email: &Email,
        except: Option<Uuid>,
    ) -> Result<bool, DomainError> {
        sqlx::query_scalar(
            "select exists (select 1 from user_credentials \
             where tenant_id = $1 and email = $2 and user_id is distinct from $3)",
        )
        .bind(tenant_id)
        .bind(email.as_str())
        .bind(except)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| lookup_failed("e-mail addresses", e))
    }

    async fn active_tenant_admins(&self, tenant_id: Uuid) -> Result<u32, DomainError> {
        let count: i64 = sqlx::query_scalar(
            "select count(*) from user_credentials \
             where tenant_id = $1 and active and 'TenantAdmin' = any(roles)",
        )
        .bind(tenant_id)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| lookup_failed("tenant admins", e))?;
        Ok(u32::try_from(count).unwrap_or(u32::MAX))
    }

    async fn account(
        &self,
        tenant_id: Uuid,
        account_id: Uuid,
    ) -> Result<Option<AccountFacts>, DomainError> {
        self.account_facts(tenant_id, account_id).await
    }
}
