//! Sign-in attempts per client address, per replica: one address guessing across many
//! e-mails (or tenants) is slowed down before argon2 runs, which the per-source lockout alone
//! would not do. Counted in fixed windows of a minute from the address's first attempt;
//! each replica counts its own, so behind N replicas an address gets up to N times the limit.
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::AuthError;

const WINDOW: Duration = Duration::from_secs(60);
/// Past this many addresses, windows that ended are dropped, so memory stays bounded.
const PRUNE_ABOVE: usize = 10_000;

pub(crate) struct SignInThrottle {
    per_minute: u32,
    windows: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl SignInThrottle {
    pub(crate) fn new(per_minute: u32) -> Self {
        Self {
            per_minute,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Counts an attempt from `address`; refused (429 with `Retry-After`) beyond the limit.
    pub(crate) fn admit(&self, address: IpAddr) -> Result<(), AuthError> {
        let now = Instant::now();
        let mut windows = self
            .windows
            .lock()
            .expect("the throttle lock is never poisoned");
        if windows.len() > PRUNE_ABOVE {
            windows.retain(|_, (started, _)| now.duration_since(*started) < WINDOW);
        }
        let (started, count) = windows.entry(address).or_insert((now, 0));
        if now.duration_since(*started) >= WINDOW {
            (*started, *count) = (now, 0);
        }
        *count += 1;
        if *count <= self.per_minute {
            return Ok(());
        }
        let left = WINDOW.saturating_sub(now.duration_since(*started));
        Err(AuthError::SignInsFromAddress {
            limit: self.per_minute,
            retry_after: u32::try_from(left.as_secs().max(1)).unwrap_or(60),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_refused_beyond_its_limit_and_others_are_not() {
        let throttle = SignInThrottle::new(3);
        let (guesser, user): (IpAddr, IpAddr) =
            ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        for _ in 0..3 {
            assert!(throttle.admit(guesser).is_ok());
        }
        match throttle.admit(guesser) {
            Err(AuthError::SignInsFromAddress { retry_after, .. }) => {
                assert!((1..=60).contains(&retry_after))
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert!(throttle.admit(user).is_ok());
    }
}
