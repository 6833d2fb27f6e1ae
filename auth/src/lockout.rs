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

/// Counts an attempt from `source`. Before any tenant is known, so through
/// `count_sign_in_attempt` (migration 0021), which keeps the counts of every tenant.
pub(crate) async fn count_attempt(
    pool: &PgPool,
    source: &Source<'_>,
    policy: &IdentityPolicy,
) -> Result<Attempt, AuthError> {
    let (seconds, on_this_email): (Option<i32>, i64) = sqlx::query_as(
        "select locked_for, on_this_email from count_sign_in_attempt($1, $2, $3, $4, $5)",
    )
    .bind(source.tenant)
    .bind(source.email)
    .bind(source.address)
    .bind(i32::try_from(policy.max_sign_in_failures).unwrap_or(i32::MAX))
    .bind(policy.lock_for.as_secs_f64())
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
    sqlx::query("select clear_sign_in_failures($1, $2, $3)")
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
