//! Sign-in lockout: too many failures for one tenant slug and e-mail within the lock period
//! lock that pair for the lock period, whether or not the tenant or the address exists.
use sqlx::PgPool;

use crate::{AuthError, IdentityPolicy};

/// Whole seconds the pair stays locked, if it is locked now.
pub(crate) async fn seconds_locked(
    pool: &PgPool,
    tenant: &str,
    email: &str,
) -> Result<Option<u32>, AuthError> {
    let seconds: Option<i32> = sqlx::query_scalar(
        "select greatest(1, ceil(extract(epoch from locked_until - now())))::integer \
         from sign_in_failures \
         where tenant_slug = $1 and email = $2 and locked_until > now()",
    )
    .bind(tenant)
    .bind(email)
    .fetch_optional(pool)
    .await?;
    Ok(seconds.map(|s| s.unsigned_abs()))
}

/// Counts one failure; the one that reaches the limit sets the lock. A failure after the
/// period has passed starts counting afresh.
pub(crate) async fn record_failure(
    pool: &PgPool,
    tenant: &str,
    email: &str,
    policy: &IdentityPolicy,
) -> Result<(), AuthError> {
    sqlx::query(
        "with policy as (select $3::integer as max_failures, \
                                $4 * interval '1 second' as period) \
         insert into sign_in_failures as f \
             (tenant_slug, email, tenant_id, failures, window_started_at, locked_until) \
         select $1, $2, (select id from tenants where slug = $1), 1, now(), \
                case when max_failures <= 1 then now() + period end \
         from policy \
         on conflict (tenant_slug, email) do update set \
             failures = case when f.window_started_at > now() - (select period from policy) \
                             then f.failures + 1 else 1 end, \
             window_started_at = case when f.window_started_at > now() - (select period from policy) \
                                      then f.window_started_at else now() end, \
             locked_until = case \
                 when f.window_started_at > now() - (select period from policy) \
                  and f.failures + 1 >= (select max_failures from policy) \
                 then now() + (select period from policy) \
                 else f.locked_until end",
    )
    .bind(tenant)
    .bind(email)
    .bind(i32::try_from(policy.max_sign_in_failures).unwrap_or(i32::MAX))
    .bind(policy.lock_for.as_secs_f64())
    .execute(pool)
    .await?;
    Ok(())
}

pub(crate) async fn clear(pool: &PgPool, tenant: &str, email: &str) -> Result<(), AuthError> {
    sqlx::query("delete from sign_in_failures where tenant_slug = $1 and email = $2")
        .bind(tenant)
        .bind(email)
        .execute(pool)
        .await?;
    Ok(())
}
