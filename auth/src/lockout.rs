//! Sign-in lockout, per tenant slug and e-mail as typed, whether or not either exists. Every
//! attempt is counted before its password is checked (a success then clears the count), so
//! attempts sent in parallel cannot all slip past the limit while argon2 runs. The attempt
//! after `max_sign_in_failures` within the lock period locks the pair for the lock period.
use sqlx::PgPool;

use crate::{AuthError, IdentityPolicy};

/// The pair's period is still running and no lock of it has expired; otherwise counting
/// starts afresh.
const COUNTING: &str = "(f.window_started_at > now() - (select period from policy) \
    and (f.locked_until is null or f.locked_until > now()))";

/// Counts an attempt; `Some(seconds)` when the pair is locked and the attempt must be refused.
pub(crate) async fn count_attempt(
    pool: &PgPool,
    tenant: &str,
    email: &str,
    policy: &IdentityPolicy,
) -> Result<Option<u32>, AuthError> {
    let seconds: Option<i32> = sqlx::query_scalar(
        "with policy as (select $3::integer as max_failures, \
                                $4 * interval '1 second' as period) \
         insert into sign_in_failures as f \
             (tenant_slug, email, tenant_id, failures, window_started_at) \
         values ($1, $2, (select id from tenants where slug = $1), 1, now()) \
         on conflict (tenant_slug, email) do update set \
             failures = case when {COUNTING} then f.failures + 1 else 1 end, \
             window_started_at = case when {COUNTING} then f.window_started_at else now() end, \
             locked_until = case \
                 when f.locked_until > now() then f.locked_until \
                 when {COUNTING} and f.failures + 1 > (select max_failures from policy) \
                 then now() + (select period from policy) \
                 end \
         returning case when locked_until > now() \
             then greatest(1, ceil(extract(epoch from locked_until - now())))::integer end"
            .replace("{COUNTING}", COUNTING)
            .as_str(),
    )
    .bind(tenant)
    .bind(email)
    .bind(i32::try_from(policy.max_sign_in_failures).unwrap_or(i32::MAX))
    .bind(policy.lock_for.as_secs_f64())
    .fetch_one(pool)
    .await?;
    Ok(seconds.map(|s| s.unsigned_abs()))
}

pub(crate) async fn clear(pool: &PgPool, tenant: &str, email: &str) -> Result<(), AuthError> {
    sqlx::query("delete from sign_in_failures where tenant_slug = $1 and email = $2")
        .bind(tenant)
        .bind(email)
        .execute(pool)
        .await?;
    Ok(())
}
