//! Sign-in attempts per client address, per replica: one address guessing across many
//! e-mails (or tenants) is slowed down before argon2 runs, which the per-source lockout alone
//! would not do. Counted in fixed windows of a minute from the address's first attempt;
//! each replica counts its own, so behind N replicas an address gets up to N times the limit.
//! IPv6 clients are counted per /64, the block one subscriber usually holds.
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::sync::Cache;

use crate::AuthError;

const WINDOW: Duration = Duration::from_secs(60);
/// Addresses remembered at once; beyond, the least recently seen are forgotten first, so a
/// flood of distinct addresses cannot grow memory without bound.
const MAX_ADDRESSES: u64 = 100_000;

pub(crate) struct SignInThrottle {
    per_minute: u32,
    windows: Cache<IpAddr, Arc<(Instant, AtomicU32)>>,
}

impl SignInThrottle {
    pub(crate) fn new(per_minute: u32) -> Self {
        Self {
            per_minute,
            windows: Cache::builder()
                .max_capacity(MAX_ADDRESSES)
                .time_to_live(WINDOW)
                .build(),
        }
    }

    /// Counts an attempt from `address`; refused (429 with `Retry-After`) beyond the limit.
    pub(crate) fn admit(&self, address: IpAddr) -> Result<(), AuthError> {
        let window = self
            .windows
            .get_with(address, || Arc::new((Instant::now(), AtomicU32::new(0))));
        let (started, count) = (&window.0, &window.1);
        if count.fetch_add(1, Ordering::AcqRel) < self.per_minute {
            return Ok(());
        }
        let left = WINDOW.saturating_sub(started.elapsed());
        Err(AuthError::SignInsFromAddress {
            limit: self.per_minute,
            retry_after: u32::try_from(left.as_secs().max(1)).unwrap_or(60),
        })
    }
}

/// Who is guessing, as far as an address tells: an IPv4 address, or an IPv6 /64.
pub(crate) fn guessing_source(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
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

    #[test]
    fn ipv6_addresses_of_one_64_are_one_source() {
        let one: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let same_block: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let other_block: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(guessing_source(one), guessing_source(same_block));
        assert_ne!(guessing_source(one), guessing_source(other_block));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(
            guessing_source(mapped),
            "192.0.2.7".parse::<IpAddr>().unwrap()
        );
    }
}
