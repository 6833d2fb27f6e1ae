//! Sign-in lockout, per guessing source: the client's address with the tenant slug and e-mail
//! as typed, whether or not either exists. Locking the account itself would let anyone lock
//! anyone out; locking the source stops the guesser while the real user, from their own
//! address, still gets in. Every attempt is counted before its password is checked (a success
//! then clears that source's count), so attempts sent in parallel cannot all slip past the
//! limit while argon2 runs. The attempt after `max_sign_in_failures` within the lock period
//! locks the source for the lock period.
use sqlx::PgPool;

use crate::{AuthError, IdentityPolicy};

/// The pair's period is still running and no lock of it has expired; otherwise counting
/// starts afresh.
const COUNTING: &str = "(f.window_started_at > now() - (select period from policy) \
    and (f.locked_until is null or f.locked_until > now()))";

/// Who is guessing: the client's address, the tenant slug and the e-mail as typed.
pub(crate) struct Source<'a> {
    pub address: &'a str,
    pub tenant: &'a str,
    pub email: &'a str,
}

/// Counts an attempt; `Some(seconds)` when the source is locked and the attempt must be
/// refused.
pub(crate) async fn count_attempt(
    pool: &PgPool,
    source: &Source<'_>,
    policy: &IdentityPolicy,
) -> Result<Option<u32>, AuthError> {
    let seconds: Option<i32> = sqlx::query_scalar(
        "with policy as (select $3::integer as max_failures, \
                                $4 * interval '1 second' as period) \
         insert into sign_in_failures as f \
             (tenant_slug, email, source, tenant_id, failures, window_started_at) \
         values ($1, $2, $5, (select id from tenants where slug = $1), 1, now()) \
         on conflict (tenant_slug, email, source) do update set \
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
    .bind(source.tenant)
    .bind(source.email)
    .bind(i32::try_from(policy.max_sign_in_failures).unwrap_or(i32::MAX))
    .bind(policy.lock_for.as_secs_f64())
    .bind(source.address)
    .fetch_one(pool)
    .await?;
    Ok(seconds.map(|s| s.unsigned_abs()))
}

/// A success proves the source knows the password: its count starts again. Other sources'
/// counts (and locks) stay.
pub(crate) async fn clear(pool: &PgPool, source: &Source<'_>) -> Result<(), AuthError> {
    sqlx::query(
        "delete from sign_in_failures where tenant_slug = $1 and email = $2 and source = $3",
    )
    .bind(source.tenant)
    .bind(source.email)
    .bind(source.address)
    .execute(pool)
    .await?;
    Ok(())
}
