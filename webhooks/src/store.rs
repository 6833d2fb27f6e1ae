//! Webhook endpoint commands as a TenantAdmin runs them through the command API: each gathers
//! its facts (the host's addresses, the endpoint's state), lets the rules of [`crate::endpoint`]
//! decide, and writes in one transaction of the caller's tenant (row-level security).
use std::net::IpAddr;

use aggregates::{Actor, DomainError, RuleCode};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::endpoint::{self, may_manage};
use crate::signature::new_secret;
use crate::target::Reach;
use crate::WebhookError;

/// Who runs a command: the actor, their id (a user's, or an API key's) and their tenant.
pub struct Caller<'a> {
    pub actor: &'a Actor,
    pub id: Uuid,
    pub tenant: Uuid,
}

/// An endpoint as a TenantAdmin asks for it.
#[derive(Debug, Clone)]
pub struct EndpointRequest {
    pub url: String,
    pub event_types: Vec<String>,
    pub description: Option<String>,
}

/// A change: each field present is replaced.
#[derive(Debug, Clone, Default)]
pub struct EndpointChange {
    pub url: Option<String>,
    pub event_types: Option<Vec<String>>,
    pub description: Option<String>,
}

/// A new secret: in this value and in the endpoint's row, nowhere else.
#[derive(Debug)]
pub struct Secret {
    pub secret: String,
}

/// Endpoint commands over the API login's pool.
#[derive(Clone)]
pub struct Endpoints {
    pool: PgPool,
    reach: Reach,
}

impl Endpoints {
    pub fn new(pool: PgPool, reach: Reach) -> Self {
        Self { pool, reach }
    }

    /// Registers endpoint `id`; its secret is answered once.
    #[tracing::instrument(skip_all, fields(tenant = %caller.tenant, webhook = %id))]
    pub async fn register(
        &self,
        caller: Caller<'_>,
        id: Uuid,
        request: EndpointRequest,
    ) -> Result<Secret, WebhookError> {
        may_manage(caller.actor)?;
        let url = self.url(&request.url).await?;
        let event_types = endpoint::event_types(request.event_types)?;
        let description = endpoint::description(request.description)?;
        let secret = new_secret();
        let mut tx = event_store::db::begin_for_tenant(&self.pool, caller.tenant).await?;
        let inserted = sqlx::query(
            "insert into webhook_endpoints (id, tenant_id, url, event_types, description, secret, \
                                            created_by) \
             values ($1, $2, $3, $4, $5, $6, $7) on conflict (id) do nothing",
        )
        .bind(id)
        .bind(caller.tenant)
        .bind(&url)
        .bind(&event_types)
        .bind(&description)
        .bind(&secret)
        .bind(caller.id)
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            return Err(DomainError::rule(
                RuleCode::WebhookExists,
                "a webhook endpoint with this id exists",
            )
            .into());
        }
        tx.commit().await?;
        Ok(Secret { secret })
    }

    /// Replaces the fields the change names.
    #[tracing::instrument(skip_all, fields(tenant = %caller.tenant, webhook = %id))]
    pub async fn change(
        &self,
        caller: Caller<'_>,
        id: Uuid,
        change: EndpointChange,
    ) -> Result<(), WebhookError> {
        may_manage(caller.actor)?;
        let url = match change.url {
            Some(raw) => Some(self.url(&raw).await?),
            None => None,
        };
        let event_types = change.event_types.map(endpoint::event_types).transpose()?;
        let description = match change.description {
            Some(text) => Some(endpoint::description(Some(text))?),
            None => None,
        };
        self.update(
            caller.tenant,
            sqlx::query(
                "update webhook_endpoints set url = coalesce($2, url), \
                        event_types = coalesce($3, event_types), \
                        description = coalesce($4, description), updated_at = now() \
                  where id = $1",
            )
            .bind(id)
            .bind(url)
            .bind(event_types)
            .bind(description),
        )
        .await
    }

    /// Disables the endpoint: new events are not recorded for it, and its pending deliveries
    /// are parked (`RedeliverWebhook` replays them once it is enabled again).
    #[tracing::instrument(skip_all, fields(tenant = %caller.tenant, webhook = %id))]
    pub async fn disable(&self, caller: Caller<'_>, id: Uuid) -> Result<(), WebhookError> {
        may_manage(caller.actor)?;
        let mut tx = event_store::db::begin_for_tenant(&self.pool, caller.tenant).await?;
        let found = sqlx::query(
            "update webhook_endpoints set enabled = false, \
                    disabled_reason = coalesce(disabled_reason, 'admin'), updated_at = now() \
              where id = $1",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if found.rows_affected() == 0 {
            return Err(not_found());
        }
        park_pending(&mut tx, id).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Enables the endpoint: events are recorded for it again (parked deliveries stay parked
    /// until a redelivery is asked for).
    #[tracing::instrument(skip_all, fields(tenant = %caller.tenant, webhook = %id))]
    pub async fn enable(&self, caller: Caller<'_>, id: Uuid) -> Result<(), WebhookError> {
        may_manage(caller.actor)?;
        self.update(
            caller.tenant,
            sqlx::query(
                "update webhook_endpoints set enabled = true, disabled_reason = null, \
                        updated_at = now() where id = $1",
            )
            .bind(id),
        )
        .await
    }

    /// Deletes the endpoint with its delivery log.
    #[tracing::instrument(skip_all, fields(tenant = %caller.tenant, webhook = %id))]
    pub async fn delete(&self, caller: Caller<'_>, id: Uuid) -> Result<(), WebhookError> {
        may_manage(caller.actor)?;
        self.update(
            caller.tenant,
            sqlx::query("delete from webhook_endpoints where id = $1").bind(id),
        )
        .await
    }

    /// Replaces the secret; every delivery sent from now on is signed with the new one.
    #[tracing::instrument(skip_all, fields(tenant = %caller.tenant, webhook = %id))]
    pub async fn rotate_secret(
        &self,
        caller: Caller<'_>,
        id: Uuid,
    ) -> Result<Secret, WebhookError> {
        may_manage(caller.actor)?;
        let secret = new_secret();
        self.update(
            caller.tenant,
            sqlx::query(
                "update webhook_endpoints set secret = $2, secret_rotated_at = now(), \
                        updated_at = now() where id = $1",
            )
            .bind(id)
            .bind(&secret),
        )
        .await?;
        Ok(Secret { secret })
    }

    /// Puts deliveries back in line: the one named (whatever its status), or else every
    /// parked delivery of the endpoint, each with a fresh retry window. The endpoint must be
    /// enabled. Answers how many were put back.
    #[tracing::instrument(skip_all, fields(tenant = %caller.tenant, webhook = %id))]
    pub async fn redeliver(
        &self,
        caller: Caller<'_>,
        id: Uuid,
        delivery: Option<Uuid>,
    ) -> Result<u64, WebhookError> {
        may_manage(caller.actor)?;
        let mut tx = event_store::db::begin_for_tenant(&self.pool, caller.tenant).await?;
        let enabled: Option<bool> =
            sqlx::query_scalar("select enabled from webhook_endpoints where id = $1 for update")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        match enabled {
            None => return Err(not_found()),
            Some(false) => {
                return Err(DomainError::rule(
                    RuleCode::WebhookDisabled,
                    "the endpoint is disabled: enable it before asking for a redelivery",
                )
                .into())
            }
            Some(true) => {}
        }
        let requeued = sqlx::query(
            "update webhook_deliveries set status = 'pending', next_attempt_at = now(), \
                    retry_from = now(), leased_until = null, delivered_at = null \
              where endpoint_id = $1 \
                and (case when $2::uuid is null then status = 'parked' else id = $2 end)",
        )
        .bind(id)
        .bind(delivery)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if delivery.is_some() && requeued == 0 {
            return Err(DomainError::NotFound("webhook delivery").into());
        }
        tx.commit().await?;
        Ok(requeued)
    }

    /// The URL rule: its form, then where its host resolves now.
    async fn url(&self, raw: &str) -> Result<String, WebhookError> {
        let url = endpoint::parse_url(raw, self.reach)?;
        let addresses = resolve(&url).await;
        endpoint::decide_url(&url, &addresses, self.reach)?;
        Ok(url.to_string())
    }

    /// Runs one statement on endpoint `id` in its own transaction; no row is not found.
    async fn update(
        &self,
        tenant: Uuid,
        statement: sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> Result<(), WebhookError> {
        let mut tx = event_store::db::begin_for_tenant(&self.pool, tenant).await?;
        if statement.execute(&mut *tx).await?.rows_affected() == 0 {
            return Err(not_found());
        }
        tx.commit().await?;
        Ok(())
    }
}

fn not_found() -> WebhookError {
    DomainError::NotFound("webhook endpoint").into()
}

/// Parks the endpoint's pending deliveries (it was disabled).
pub(crate) async fn park_pending(
    conn: &mut PgConnection,
    endpoint: Uuid,
) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "update webhook_deliveries set status = 'parked', next_attempt_at = null, \
                leased_until = null \
          where endpoint_id = $1 and status = 'pending'",
    )
    .bind(endpoint)
    .execute(conn)
    .await?
    .rows_affected())
}

/// Every address the URL's host names: the literal itself, or what DNS answers now (nothing
/// when it does not answer, which the rule refuses).
async fn resolve(url: &url::Url) -> Vec<IpAddr> {
    match url.host() {
        Some(url::Host::Ipv4(v4)) => vec![IpAddr::V4(v4)],
        Some(url::Host::Ipv6(v6)) => vec![IpAddr::V6(v6)],
        Some(url::Host::Domain(name)) => {
            let port = url.port_or_known_default().unwrap_or(443);
            match tokio::net::lookup_host((name, port)).await {
                Ok(found) => found.map(|a| a.ip()).collect(),
                Err(error) => {
                    tracing::info!(%error, host = name, "webhook host does not resolve");
                    Vec::new()
                }
            }
        }
        None => Vec::new(),
    }
}
