//! Sign-in lockout, per guessing source: the client's address with the tenant slug and e-mail
//! as typed, whether or not either exists. Locking the account itself would let anyone lock
//! anyone out; locking the source stops the guesser while the real user, from their own
//! address, still gets in. Every attempt is counted before its password is checked (a success
//! then clears that source's count), so attempts sent in parallel cannot all slip past the
//! limit while argon2 runs. The attempt after `max_sign_in_failures` within the lock period
//! locks the source for the lock period.
use std::time::Duration;

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

/// What counting an attempt found.
pub(crate) struct Attempt {
    /// Seconds the source stays locked, when it is: the attempt must be refused.
    pub locked_for: Option<u32>,
    /// Attempts on this tenant and e-mail within the period from every source: many sources
    /// each staying under the lock are still one distributed guess.
    pub on_this_email: i64,
}

impl Attempt {
    /// How long to hold the answer back: nothing while the e-mail sees no more attempts than
    /// one source may make, then doubling from a quarter second up to 8 s. The account is never
    /// locked (that would let anyone lock anyone out); guessing it from many addresses just
    /// gets slow.
    pub fn delay(&self, policy: &IdentityPolicy) -> Duration {
        let excess = self.on_this_email - i64::from(policy.max_sign_in_failures);
        match u32::try_from(excess) {
            Ok(excess) if excess > 0 => {
                Duration::from_millis(250 << excess.min(6).saturating_sub(1))
            }
            _ => Duration::ZERO,
        }
    }
}

/// Counts an attempt from `source`.
pub(crate) async fn count_attempt(
    pool: &PgPool,
    source: &Source<'_>,
    policy: &IdentityPolicy,
) -> Result<Attempt, AuthError> {
    let (seconds, on_this_email): (Option<i32>, i64) = sqlx::query_as(
        "with policy as (select $3::integer as max_failures, \
                                $4 * interval '1 second' as period), \
         counted as (insert into sign_in_failures as f \
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
         returning locked_until, failures) \
         select case when c.locked_until > now() \
             then greatest(1, ceil(extract(epoch from c.locked_until - now())))::integer end, \
             c.failures + (select coalesce(sum(o.failures), 0) from sign_in_failures o \
                 where o.tenant_slug = $1 and o.email = $2 and o.source <> $5 \
                   and o.window_started_at > now() - (select period from policy))::bigint \
         from counted c"
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
    Ok(Attempt {
        locked_for: seconds.map(|s| s.unsigned_abs()),
        on_this_email,
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guesses_spread_over_sources_slow_the_email_down_but_never_lock_it() {
        let policy = IdentityPolicy::default();
        let delay = |on_this_email| {
            Attempt {
                locked_for: None,
                on_this_email,
            }
            .delay(&policy)
        };
        assert_eq!(delay(1), Duration::ZERO);
        assert_eq!(delay(5), Duration::ZERO, "one source's share costs nothing");
        assert_eq!(delay(6), Duration::from_millis(250));
        assert_eq!(delay(7), Duration::from_millis(500));
        assert_eq!(delay(11), Duration::from_secs(8));
        assert_eq!(delay(10_000), Duration::from_secs(8), "capped");
    }
}
