//! The delivery worker: sends due deliveries, records each attempt, retries with exponential
//! backoff, and parks an endpoint's deliveries (disabling it) once one of them has failed for
//! its whole retry window.
//!
//! Due deliveries are claimed with a lease (`leased_until`) in one statement and each sent by a
//! task of its own, with bounds on attempts in flight overall and per endpoint. A delivery is due only when no earlier event of the same
//! aggregate is still undelivered for the same endpoint, so each endpoint gets each aggregate's
//! events in order, while a failing endpoint or aggregate holds up nothing else. A worker that
//! dies mid-attempt leaves the lease to run out, and the delivery is sent again: at least once.
//! Several workers (processes) may run; `for update skip locked` shares the rows out.
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBuilder};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use sqlx::PgPool;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::signature::sign;
use crate::store::park_pending;
use crate::target::{is_public, Reach};

/// How deliveries are retried.
#[derive(Debug, Clone, Copy)]
pub struct RetrySchedule {
    /// The pause after the first failed attempt; each further one doubles it (with jitter).
    pub first: Duration,
    /// The longest pause between attempts.
    pub max: Duration,
    /// How long a delivery is retried (from its creation or replay) before its endpoint is
    /// disabled and its deliveries parked: 24 hours by default.
    pub window: Duration,
}

impl Default for RetrySchedule {
    fn default() -> Self {
        Self {
            first: Duration::from_secs(5),
            max: Duration::from_secs(3600),
            window: Duration::from_secs(24 * 3600),
        }
    }
}

impl RetrySchedule {
    /// The pause after failed attempt number `attempt` (1 for the first).
    pub fn pause_after(&self, attempt: i32) -> Duration {
        ExponentialBuilder::new()
            .with_min_delay(self.first)
            .with_max_delay(self.max)
            .with_factor(2.0)
            .with_jitter()
            .without_max_times()
            .build()
            .nth(usize::try_from(attempt.max(1) - 1).unwrap_or(0))
            .unwrap_or(self.max)
    }
}

#[derive(Debug, Clone)]
pub struct SenderConfig {
    /// How often to look for due deliveries when the last look found none.
    pub poll: Duration,
    /// Most attempts in flight at once.
    pub in_flight: usize,
    /// Most attempts in flight to one endpoint at once.
    pub per_endpoint: usize,
    /// One attempt's limit (connect and answer); the lease is twice it.
    pub timeout: Duration,
    pub retry: RetrySchedule,
    pub reach: Reach,
}

impl Default for SenderConfig {
    fn default() -> Self {
        Self {
            poll: Duration::from_millis(250),
            in_flight: 64,
            per_endpoint: 32,
            timeout: Duration::from_secs(10),
            retry: RetrySchedule::default(),
            reach: Reach::PublicOnly,
        }
    }
}

/// A claimed delivery and where it goes.
#[derive(Debug, sqlx::FromRow)]
struct Claimed {
    id: Uuid,
    tenant_id: Uuid,
    endpoint_id: Uuid,
    url: String,
    secret: String,
    body: String,
    attempts: i32,
}

/// How one attempt went.
struct Outcome {
    status_code: Option<i32>,
    error: Option<String>,
    latency: Duration,
}

impl Outcome {
    fn delivered(&self) -> bool {
        self.status_code
            .is_some_and(|code| (200..300).contains(&code))
    }
}

/// Runs until `stop` is cancelled, then lets the attempts in flight finish (each is bounded by
/// the attempt timeout; one cut short is sent again when its lease runs out).
///
/// Attempts run as tasks, at most `in_flight` at once and at most `per_endpoint` for one
/// endpoint: whenever some finish, more are claimed, so a slow or hanging endpoint holds up
/// only its own share, never a whole round of other endpoints' deliveries.
pub async fn run(pool: PgPool, config: SenderConfig, stop: CancellationToken) {
    let client = match client(&config) {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, "cannot build the webhook HTTP client");
            return;
        }
    };
    let mut attempts: JoinSet<()> = JoinSet::new();
    while !stop.is_cancelled() {
        while attempts.try_join_next().is_some() {}
        let free = config.in_flight.saturating_sub(attempts.len());
        // Claiming costs a statement over every due delivery: with most attempts still in
        // flight, wait for more of them to end and claim those places at once.
        if free == 0 || (free < config.in_flight / 2 && !attempts.is_empty()) {
            tokio::select! {
                _ = attempts.join_next() => {}
                _ = stop.cancelled() => {}
            }
            continue;
        }
        let pause = match claim(&pool, &config, free).await {
            Ok(claimed) if claimed.is_empty() => config.poll,
            Ok(claimed) => {
                for delivery in claimed {
                    let (pool, client, config) = (pool.clone(), client.clone(), config.clone());
                    attempts.spawn(async move {
                        let outcome = match revealed(&pool, &delivery).await {
                            Ok(body) => send(&client, &delivery, body).await,
                            Err(error) => Outcome::not_sent(error.to_string()),
                        };
                        if let Err(error) = record(&pool, &config, &delivery, &outcome).await {
                            // The lease runs out and the delivery is sent again.
                            tracing::warn!(%error, delivery = %delivery.id, "recording a webhook attempt failed");
                        }
                    });
                }
                continue;
            }
            Err(error) => {
                tracing::warn!(%error, "claiming webhook deliveries failed; trying again");
                config.poll.max(Duration::from_secs(1))
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = attempts.join_next(), if !attempts.is_empty() => {}
            _ = stop.cancelled() => {}
        }
    }
    while attempts.join_next().await.is_some() {}
    tracing::info!("webhook delivery worker stopped");
}

/// Leases up to `limit` due deliveries, oldest due first, leaving each endpoint at most
/// `per_endpoint` in flight. The claim names no tenant: the worker's login sees every tenant's
/// deliveries only in a transaction that names none.
async fn claim(
    pool: &PgPool,
    config: &SenderConfig,
    limit: usize,
) -> Result<Vec<Claimed>, sqlx::Error> {
    sqlx::query_as(
        "with in_flight as ( \
             select endpoint_id, count(*) as n from webhook_deliveries \
              where status = 'pending' and leased_until >= now() group by endpoint_id), \
         candidates as ( \
             select d.id, d.next_attempt_at, d.global_position, \
                    row_number() over (partition by d.endpoint_id \
                                       order by d.next_attempt_at, d.global_position) \
                    + coalesce(f.n, 0) as place \
               from webhook_deliveries d \
               join webhook_endpoints e on e.id = d.endpoint_id and e.enabled \
               left join in_flight f on f.endpoint_id = d.endpoint_id \
              where d.status = 'pending' and d.next_attempt_at <= now() \
                and (d.leased_until is null or d.leased_until < now()) \
                and not exists ( \
                    select 1 from webhook_deliveries p \
                     where p.endpoint_id = d.endpoint_id and p.status <> 'delivered' \
                       and p.aggregate_type = d.aggregate_type \
                       and p.aggregate_id = d.aggregate_id and p.sequence < d.sequence)), \
         due as ( \
             select d.id from webhook_deliveries d join candidates c on c.id = d.id \
              where c.place <= $3 and d.status = 'pending' \
                and (d.leased_until is null or d.leased_until < now()) \
              order by c.next_attempt_at, c.global_position \
              limit $1 for update of d skip locked) \
         update webhook_deliveries d \
            set leased_until = now() + $2 * interval '1 millisecond', attempts = d.attempts + 1 \
           from due, webhook_endpoints e \
          where d.id = due.id and e.id = d.endpoint_id \
         returning d.id, d.tenant_id, d.endpoint_id, e.url, e.secret, d.body, d.attempts",
    )
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .bind(millis(config.timeout * 2))
    .bind(i64::try_from(config.per_endpoint).unwrap_or(i64::MAX))
    .fetch_all(pool)
    .await
}

/// The delivery's body with the event's personal data revealed: recorded sealed, it is read as
/// of this attempt, so a subject forgotten meanwhile goes out erased.
async fn revealed(pool: &PgPool, delivery: &Claimed) -> Result<String, event_store::StoreError> {
    let mut body: serde_json::Value = serde_json::from_str(&delivery.body)
        .map_err(|e| event_store::StoreError::Storage(format!("a delivery body: {e}")))?;
    if let Some(payload) = body.pointer_mut("/data/payload") {
        event_store::personal::reveal(pool, vec![(delivery.tenant_id, payload)]).await?;
    }
    Ok(body.to_string())
}

impl Outcome {
    fn not_sent(error: String) -> Self {
        Self {
            status_code: None,
            error: Some(error),
            latency: Duration::ZERO,
        }
    }
}

/// One attempt: the body, signed, as a POST.
async fn send(client: &reqwest::Client, delivery: &Claimed, body: String) -> Outcome {
    let id = delivery.id.to_string();
    let timestamp = chrono::Utc::now().timestamp();
    let started = Instant::now();
    let Some(signature) = sign(&delivery.secret, &id, timestamp, &body) else {
        return Outcome {
            status_code: None,
            error: Some("the endpoint's secret is not a whsec_ secret".into()),
            latency: started.elapsed(),
        };
    };
    let sent = client
        .post(&delivery.url)
        .header("content-type", "application/json")
        .header("webhook-id", &id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(body)
        .send()
        .await;
    let latency = started.elapsed();
    match sent {
        Ok(response) => Outcome {
            status_code: Some(i32::from(response.status().as_u16())),
            error: None,
            latency,
        },
        Err(error) => Outcome {
            status_code: None,
            error: Some(error_chain(&error)),
            latency,
        },
    }
}

/// Stores the attempt and the delivery's next state in one statement: delivered, or due again
/// after a pause; when the pause would end past its retry window, the delivery is parked with
/// every pending delivery of its endpoint, which is disabled.
#[tracing::instrument(skip_all, fields(delivery = %delivery.id, endpoint = %delivery.endpoint_id))]
async fn record(
    pool: &PgPool,
    config: &SenderConfig,
    delivery: &Claimed,
    outcome: &Outcome,
) -> Result<(), sqlx::Error> {
    let latency_ms = i32::try_from(outcome.latency.as_millis()).unwrap_or(i32::MAX);
    metrics::histogram!("b2b_webhook_delivery_duration_seconds")
        .record(outcome.latency.as_secs_f64());
    let delivered = outcome.delivered();
    let pause = config.retry.pause_after(delivery.attempts);
    let moved = sqlx::query(
        "with attempt as ( \
             insert into webhook_attempts (delivery_id, attempt, tenant_id, status_code, \
                                           error, latency_ms) \
             select id, $2, tenant_id, $3, $4, $5 from webhook_deliveries where id = $1 \
             on conflict do nothing) \
         update webhook_deliveries \
            set last_status_code = $3, last_error = $4, last_latency_ms = $5, \
                leased_until = null, \
                status = case when $6 then 'delivered' else status end, \
                delivered_at = case when $6 then now() end, \
                next_attempt_at = case when not $6 then now() + $7 * interval '1 millisecond' end \
          where id = $1 \
            and ($6 or now() + $7 * interval '1 millisecond' \
                       <= retry_from + $8 * interval '1 millisecond')",
    )
    .bind(delivery.id)
    .bind(delivery.attempts)
    .bind(outcome.status_code)
    .bind(&outcome.error)
    .bind(latency_ms)
    .bind(delivered)
    .bind(millis(pause))
    .bind(millis(config.retry.window))
    .execute(pool)
    .await?
    .rows_affected();
    let result = match (delivered, moved) {
        (true, _) => "delivered",
        (false, 1) => "failed",
        (false, _) => {
            let last = (outcome.status_code, &outcome.error, latency_ms);
            let mut tx = pool.begin().await?;
            park_endpoint(&mut tx, delivery.endpoint_id, delivery.id, last).await?;
            tx.commit().await?;
            "parked"
        }
    };
    metrics::counter!("b2b_webhook_deliveries_total", "outcome" => result).increment(1);
    if !delivered {
        tracing::info!(
            outcome = result,
            status = ?outcome.status_code,
            error = ?outcome.error,
            attempt = delivery.attempts,
            "webhook delivery failed"
        );
    }
    Ok(())
}

type Last<'a> = (Option<i32>, &'a Option<String>, i32);

/// The delivery ran out of retries: its endpoint is disabled and every pending delivery of it
/// parked, to be replayed on request (`RedeliverWebhook`).
async fn park_endpoint(
    tx: &mut sqlx::PgConnection,
    endpoint: Uuid,
    id: Uuid,
    (code, error, latency): Last<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "update webhook_deliveries set last_status_code = $2, last_error = $3, \
                last_latency_ms = $4 where id = $1",
    )
    .bind(id)
    .bind(code)
    .bind(error)
    .bind(latency)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "update webhook_endpoints set enabled = false, disabled_reason = 'failing', \
                updated_at = now() where id = $1",
    )
    .bind(endpoint)
    .execute(&mut *tx)
    .await?;
    let parked = park_pending(tx, endpoint).await?;
    tracing::warn!(%endpoint, parked, "webhook endpoint disabled after its retry window");
    Ok(())
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The HTTP client: no redirects (a redirect could lead anywhere), and in production a resolver
/// that answers public addresses only, so the URL rule holds at every connection.
fn client(config: &SenderConfig) -> reqwest::Result<reqwest::Client> {
    let builder = reqwest::Client::builder()
        .timeout(config.timeout)
        .connect_timeout(config.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent("b2b-webhooks");
    match config.reach {
        Reach::PublicOnly => builder.dns_resolver(Arc::new(PublicResolver)),
        Reach::Anywhere => builder,
    }
    .build()
}

/// Resolves names to their public addresses only.
struct PublicResolver;

impl Resolve for PublicResolver {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let found = tokio::net::lookup_host((name.as_str(), 0)).await?;
            let public: Vec<SocketAddr> = found.filter(|a| is_public(a.ip())).collect();
            if public.is_empty() {
                return Err(format!("{} resolves to no public address", name.as_str()).into());
            }
            Ok(Box::new(public.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_grow_exponentially_up_to_the_limit() {
        let schedule = RetrySchedule {
            first: Duration::from_secs(1),
            max: Duration::from_secs(60),
            window: Duration::from_secs(3600),
        };
        // With jitter each pause is between the nominal one and twice it.
        for (attempt, nominal) in [(1, 1), (2, 2), (3, 4), (5, 16)] {
            let pause = schedule.pause_after(attempt);
            assert!(
                pause >= Duration::from_secs(nominal),
                "{attempt}: {pause:?}"
            );
            assert!(
                pause <= Duration::from_secs(nominal * 2),
                "{attempt}: {pause:?}"
            );
        }
        assert!(schedule.pause_after(30) <= Duration::from_secs(120));
    }
}
