//! The facts aggregates look up through their `Services`: other aggregates' current state, read
//! from their own streams (never from a lagging read model), and tenant policy. Every lookup is
//! scoped to the command's tenant.
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use cqrs_es::Aggregate;
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::QueryScalar;
use sqlx::{FromRow, PgPool, Postgres};
use uuid::Uuid;

use aggregates::account::{Account, AccountFacts, AccountServices};
use aggregates::approval::ApprovalServices;
use aggregates::contract::ContractServices;
use aggregates::quote::QuoteServices;
use aggregates::user::{User, UserServices};
use aggregates::{DomainError, Email, TenantPolicy, UserFacts};

use crate::streams::Streams;
use crate::StoreError;

pub struct StoreFacts {
    accounts: Arc<Streams<Account>>,
    users: Arc<Streams<User>>,
    policies: Arc<PolicyCache>,
}

impl StoreFacts {
    pub fn new(
        accounts: Arc<Streams<Account>>,
        users: Arc<Streams<User>>,
        policies: Arc<PolicyCache>,
    ) -> Self {
        Self {
            accounts,
            users,
            policies,
        }
    }

    /// The aggregate `id` of this tenant as of now, or `None` if it does not exist there.
    async fn state<A>(
        streams: &Streams<A>,
        tenant_id: Uuid,
        id: Uuid,
        what: &str,
    ) -> Result<Option<A>, DomainError>
    where
        A: Aggregate<Error = DomainError, Event: aggregates::EventSchema>
            + aggregates::PersonalData
            + Clone
            + 'static,
    {
        match streams
            .current(&id.to_string(), tenant_id)
            .await
            .and_then(|f| f.for_tenant(tenant_id))
        {
            Ok(folded) if folded.version > 0 => Ok(Some(folded.aggregate)),
            Ok(_) | Err(StoreError::NotFound(_)) => Ok(None),
            Err(error) => Err(lookup_failed(what, error)),
        }
    }

    /// One answer about the tenant's users, read in a transaction acting for the tenant
    /// (`user_credentials` has row-level security).
    async fn ask_tenant<T>(
        &self,
        tenant_id: Uuid,
        query: QueryScalar<'_, Postgres, T, PgArguments>,
    ) -> Result<T, sqlx::Error>
    where
        T: Send + Unpin,
        (T,): for<'r> FromRow<'r, PgRow>,
    {
        let mut tx = crate::db::begin_read_only_for_tenant(self.users.pool(), tenant_id).await?;
        let answer = query.fetch_one(&mut *tx).await?;
        tx.commit().await?;
        Ok(answer)
    }

    async fn account_facts(
        &self,
        tenant_id: Uuid,
        id: Uuid,
    ) -> Result<Option<AccountFacts>, DomainError> {
        let account = Self::state(&self.accounts, tenant_id, id, "account").await?;
        Ok(account.and_then(|a| a.facts()))
    }

    async fn tenant_policy(&self, tenant_id: Uuid) -> Result<TenantPolicy, DomainError> {
        self.policies
            .get(tenant_id)
            .await
            .map_err(|e| lookup_failed("tenant policy", e))
    }
}

/// Tenant policies, cached while an invalidation listener keeps them true (`set_live`): a
/// policy changes rarely, and every change notifies (migration 0013). Without a live listener
/// every lookup reads the table.
pub struct PolicyCache {
    pool: PgPool,
    cache: moka::sync::Cache<Uuid, TenantPolicy>,
    live: AtomicBool,
    /// Bumped by every invalidation, so a read that raced one is not cached.
    generation: AtomicU64,
}

impl PolicyCache {
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            cache: moka::sync::Cache::new(10_000),
            live: AtomicBool::new(false),
            generation: AtomicU64::new(0),
        }
    }

    async fn get(&self, tenant_id: Uuid) -> Result<TenantPolicy, sqlx::Error> {
        let generation = self.generation.load(Ordering::Acquire);
        let live = self.live.load(Ordering::Acquire);
        if let Some(policy) = self.cache.get(&tenant_id).filter(|_| live) {
            return Ok(policy);
        }
        let mut tx = crate::db::begin_read_only_for_tenant(&self.pool, tenant_id).await?;
        let stored: Option<sqlx::types::Json<TenantPolicy>> =
            sqlx::query_scalar("select policy from tenant_policies where tenant_id = $1")
                .bind(tenant_id)
                .fetch_optional(&mut *tx)
                .await?;
        tx.commit().await?;
        let policy = stored.map(|json| json.0).unwrap_or_default();
        if live && self.generation.load(Ordering::Acquire) == generation {
            self.cache.insert(tenant_id, policy.clone());
        }
        Ok(policy)
    }

    /// Whether invalidations are arriving; any change of that empties the cache.
    fn set_live(&self, live: bool) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.cache.invalidate_all();
        self.live.store(live, Ordering::Release);
    }

    /// Keeps the cache true to what the invalidation listener hears.
    pub fn hear(&self, invalidation: crate::Invalidation<'_>) {
        match invalidation {
            crate::Invalidation::Live(live) => self.set_live(live),
            crate::Invalidation::Changed { kind: "policy", id } => self.forget(id),
            crate::Invalidation::Changed { .. } => {}
        }
    }

    fn forget(&self, tenant_id: Uuid) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.cache.invalidate(&tenant_id);
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

    async fn policy(&self, tenant_id: Uuid) -> Result<TenantPolicy, DomainError> {
        self.tenant_policy(tenant_id).await
    }
}

#[async_trait]
impl AccountServices for StoreFacts {
    async fn policy(&self, tenant_id: Uuid) -> Result<TenantPolicy, DomainError> {
        self.tenant_policy(tenant_id).await
    }
}

#[async_trait]
impl ApprovalServices for StoreFacts {
    async fn user(&self, tenant_id: Uuid, user_id: Uuid) -> Result<Option<UserFacts>, DomainError> {
        let user = Self::state(&self.users, tenant_id, user_id, "user").await?;
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
        let query = sqlx::query_scalar(
            "select exists (select 1 from user_credentials \
             where tenant_id = $1 and email = $2 and user_id is distinct from $3)",
        )
        .bind(tenant_id)
        .bind(email.as_str())
        .bind(except);
        self.ask_tenant(tenant_id, query)
            .await
            .map_err(|e| lookup_failed("e-mail addresses", e))
    }

    async fn active_tenant_admins(&self, tenant_id: Uuid) -> Result<u32, DomainError> {
        let query = sqlx::query_scalar(
            "select count(*) from user_credentials \
             where tenant_id = $1 and active and 'TenantAdmin' = any(roles)",
        )
        .bind(tenant_id);
        let count: i64 = self
            .ask_tenant(tenant_id, query)
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
