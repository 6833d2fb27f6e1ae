//! `webhookEndpoints` and `webhookDeliveries`: the tenant's webhook endpoints and their delivery
//! log, for TenantAdmins. Read from the tables the `webhooks` crate keeps (row-level security
//! shows the request's tenant only); never an endpoint's secret, which the API login may not
//! even select.
use async_graphql::{Enum, SimpleObject};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{QueryError, TenantTx};

/// The most endpoints one answer lists.
pub const MAX_ENDPOINTS_LISTED: i64 = 500;
/// The most deliveries one answer lists, and the default.
pub const MAX_DELIVERIES_LISTED: i32 = 200;
pub const DEFAULT_DELIVERIES_LISTED: i32 = 50;

/// An endpoint that receives the tenant's events, signed per Standard Webhooks. Its secret was
/// shown once, when it was registered or rotated.
#[derive(Debug, Clone, SimpleObject, sqlx::FromRow)]
pub struct WebhookEndpoint {
    pub id: Uuid,
    pub url: String,
    /// Event type names, or `*` for every event.
    pub event_types: Vec<String>,
    pub description: String,
    /// Whether events are recorded and sent to it.
    pub enabled: bool,
    /// Why it is disabled: `admin` (DisableWebhook) or `failing` (a delivery failed for its
    /// whole retry window; its deliveries were parked).
    pub disabled_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    /// The TenantAdmin (or API key) who registered it.
    pub created_by: Uuid,
    pub updated_at: DateTime<Utc>,
    pub secret_rotated_at: Option<DateTime<Utc>>,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub enum WebhookDeliveryStatus {
    /// Waiting for its next attempt (or for an earlier event of its aggregate).
    Pending,
    /// The endpoint answered 2xx.
    Delivered,
    /// Its endpoint was disabled; `RedeliverWebhook` puts it back in line.
    Parked,
}

impl WebhookDeliveryStatus {
    fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Parked => "parked",
        }
    }

    fn parse(stored: &str) -> Result<Self, QueryError> {
        match stored {
            "pending" => Ok(Self::Pending),
            "delivered" => Ok(Self::Delivered),
            "parked" => Ok(Self::Parked),
            other => Err(QueryError::UnexpectedValue {
                column: "webhook_deliveries.status",
                value: other.to_owned(),
            }),
        }
    }
}

/// One event for one endpoint, with its attempts.
#[derive(Debug, Clone, SimpleObject)]
pub struct WebhookDelivery {
    /// The `webhook-id` header, the same on every attempt.
    pub id: Uuid,
    pub endpoint_id: Uuid,
    pub event_type: String,
    pub aggregate_type: String,
    pub aggregate_id: String,
    /// The aggregate's version this event made.
    pub version: i64,
    pub status: WebhookDeliveryStatus,
    pub attempts: i32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    pub last_latency_ms: Option<i32>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// Every attempt, oldest first.
    pub attempt_log: Vec<WebhookAttempt>,
}

/// One attempt to deliver.
#[derive(Debug, Clone, SimpleObject, sqlx::FromRow)]
pub struct WebhookAttempt {
    pub attempt: i32,
    pub at: DateTime<Utc>,
    /// The endpoint's HTTP status; null when no answer came (the error says why).
    pub status_code: Option<i32>,
    pub error: Option<String>,
    pub latency_ms: i32,
}

#[derive(sqlx::FromRow)]
struct DeliveryRow {
    id: Uuid,
    endpoint_id: Uuid,
    event_type: String,
    aggregate_type: String,
    aggregate_id: String,
    sequence: i64,
    status: String,
    attempts: i32,
    next_attempt_at: Option<DateTime<Utc>>,
    last_status_code: Option<i32>,
    last_error: Option<String>,
    last_latency_ms: Option<i32>,
    delivered_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
}

pub async fn endpoints(tx: &TenantTx, tenant_id: Uuid) -> Result<Vec<WebhookEndpoint>, QueryError> {
    let mut conn = tx.conn().await?;
    Ok(sqlx::query_as(
        "select id, url, event_types, description, enabled, disabled_reason, created_at, \
                created_by, updated_at, secret_rotated_at \
           from webhook_endpoints where tenant_id = $1 order by created_at desc, id limit $2",
    )
    .bind(tenant_id)
    .bind(MAX_ENDPOINTS_LISTED)
    .fetch_all(&mut *conn)
    .await?)
}

/// An endpoint's deliveries, newest first, with their attempts (one statement each).
pub async fn deliveries(
    tx: &TenantTx,
    tenant_id: Uuid,
    endpoint_id: Uuid,
    status: Option<WebhookDeliveryStatus>,
    first: Option<i32>,
) -> Result<Vec<WebhookDelivery>, QueryError> {
    let first = first.unwrap_or(DEFAULT_DELIVERIES_LISTED);
    if !(1..=MAX_DELIVERIES_LISTED).contains(&first) {
        return Err(QueryError::BadUserInput(format!(
            "first must be between 1 and {MAX_DELIVERIES_LISTED}"
        )));
    }
    let mut conn = tx.conn().await?;
    let rows: Vec<DeliveryRow> = sqlx::query_as(
        "select id, endpoint_id, event_type, aggregate_type, aggregate_id, sequence, status, \
                attempts, next_attempt_at, last_status_code, last_error, last_latency_ms, \
                delivered_at, created_at \
           from webhook_deliveries \
          where tenant_id = $1 and endpoint_id = $2 and ($3::text is null or status = $3) \
          order by created_at desc, global_position desc limit $4",
    )
    .bind(tenant_id)
    .bind(endpoint_id)
    .bind(status.map(WebhookDeliveryStatus::as_str))
    .bind(i64::from(first))
    .fetch_all(&mut *conn)
    .await?;
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let attempts: Vec<(Uuid, WebhookAttemptRow)> = sqlx::query_as::<_, WebhookAttemptRow>(
        "select delivery_id, attempt, at, status_code, error, latency_ms from webhook_attempts \
          where delivery_id = any($1) order by delivery_id, attempt",
    )
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(|row| (row.delivery_id, row))
    .collect();
    rows.into_iter()
        .map(|row| {
            let attempt_log = attempts
                .iter()
                .filter(|(id, _)| *id == row.id)
                .map(|(_, a)| a.clone().into())
                .collect();
            Ok(WebhookDelivery {
                id: row.id,
                endpoint_id: row.endpoint_id,
                event_type: row.event_type,
                aggregate_type: row.aggregate_type,
                aggregate_id: row.aggregate_id,
                version: row.sequence,
                status: WebhookDeliveryStatus::parse(&row.status)?,
                attempts: row.attempts,
                next_attempt_at: row.next_attempt_at,
                last_status_code: row.last_status_code,
                last_error: row.last_error,
                last_latency_ms: row.last_latency_ms,
                delivered_at: row.delivered_at,
                created_at: row.created_at,
                attempt_log,
            })
        })
        .collect()
}

#[derive(Clone, sqlx::FromRow)]
struct WebhookAttemptRow {
    delivery_id: Uuid,
    attempt: i32,
    at: DateTime<Utc>,
    status_code: Option<i32>,
    error: Option<String>,
    latency_ms: i32,
}

impl From<WebhookAttemptRow> for WebhookAttempt {
    fn from(row: WebhookAttemptRow) -> Self {
        Self {
            attempt: row.attempt,
            at: row.at,
            status_code: row.status_code,
            error: row.error,
            latency_ms: row.latency_ms,
        }
    }
}
