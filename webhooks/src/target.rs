//! The one rule for where a webhook may be sent: an `https` URL whose host resolves only to
//! public addresses. Private, loopback, link-local, shared, documentation and other reserved
//! ranges are refused, so an endpoint cannot make the server call into its own network.
//! `APP_ENV=local|test` lifts both conditions (`Reach::Anywhere`), so tests can run a receiver
//! on loopback. The rule is checked when an endpoint is registered or changed (with the host's
//! addresses resolved just before deciding) and again by the delivery worker's resolver before
//! every connection, so a name that later resolves elsewhere is still refused.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use aggregates::{DomainError, RuleCode};
use url::Url;

/// Longest URL accepted.
pub const MAX_URL_CHARS: usize = 2000;

/// Which addresses webhooks may reach in this deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// Production: `https` and public addresses only.
    PublicOnly,
    /// `APP_ENV` is `local` or `test`: any `http(s)` URL, loopback included.
    Anywhere,
}

impl Reach {
    /// The reach `APP_ENV` allows.
    pub fn for_app_env(app_env: &str) -> Self {
        match app_env {
            "local" | "test" => Self::Anywhere,
            _ => Self::PublicOnly,
        }
    }
}

fn refused(message: impl Into<String>) -> DomainError {
    DomainError::rule(RuleCode::WebhookUrlNotAllowed, message)
}

/// The URL's form: absolute, `https` (or `http` where anything may be reached), a host, no
/// user name or password, no fragment. Where the host points is checked by [`check_addresses`].
pub fn parse_url(raw: &str, reach: Reach) -> Result<Url, DomainError> {
    if raw.chars().count() > MAX_URL_CHARS {
        return Err(refused(format!(
            "url is longer than {MAX_URL_CHARS} characters"
        )));
    }
    let url = Url::parse(raw.trim()).map_err(|e| refused(format!("url is not a URL: {e}")))?;
    match (url.scheme(), reach) {
        ("https", _) | ("http", Reach::Anywhere) => {}
        (scheme, _) => return Err(refused(format!("url must be https, not {scheme}"))),
    }
    if url.host().is_none() {
        return Err(refused("url has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(refused("url must not carry a user name or password"));
    }
    if url.fragment().is_some() {
        return Err(refused("url must not have a fragment"));
    }
    Ok(url)
}

/// Every address the host resolved to must be public (none at all is refused too: nothing
/// could be delivered).
pub fn check_addresses(host: &str, addresses: &[IpAddr], reach: Reach) -> Result<(), DomainError> {
    if addresses.is_empty() {
        return Err(refused(format!("url's host {host} does not resolve")));
    }
    if reach == Reach::Anywhere {
        return Ok(());
    }
    match addresses.iter().find(|address| !is_public(**address)) {
        Some(address) => Err(refused(format!(
            "url's host {host} resolves to {address}, which is not a public address"
        ))),
        None => Ok(()),
    }
}

/// Whether an address is globally reachable (std's `is_global` is not stable yet).
pub fn is_public(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_multicast()
        || a == 0
        // Shared address space (carrier-grade NAT), 100.64.0.0/10.
        || (a == 100 && (64..128).contains(&b))
        // IETF protocol assignments, 192.0.0.0/24.
        || (a == 192 && b == 0 && c == 0)
        // Benchmarking, 198.18.0.0/15.
        || (a == 198 && (b == 18 || b == 19))
        // Reserved, 240.0.0.0/4.
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let first = ip.segments()[0];
    let second = ip.segments()[1];
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        // Unique local, fc00::/7.
        || (first & 0xfe00) == 0xfc00
        // Link-local, fe80::/10.
        || (first & 0xffc0) == 0xfe80
        // Documentation, 2001:db8::/32.
        || (first == 0x2001 && second == 0x0db8)
        // NAT64 (64:ff9b::/96) and IPv4-compatible (::/96) forms reach IPv4 addresses: judged
        // by the address they embed.
        || (first == 0x64 && second == 0xff9b && !is_public_v4(embedded_v4(ip)))
        || (ip.segments()[..6] == [0; 6]))
}

fn embedded_v4(ip: Ipv6Addr) -> Ipv4Addr {
    let o = ip.octets();
    Ipv4Addr::new(o[12], o[13], o[14], o[15])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(error: DomainError) -> &'static str {
        match error {
            DomainError::RuleViolated { code, .. } => code.as_str(),
            _ => "other",
        }
    }

    #[test]
    fn private_and_reserved_addresses_are_not_public() {
        for address in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "0.1.2.3",
            "192.0.0.8",
            "192.0.2.1",
            "198.18.0.1",
            "224.0.0.1",
            "240.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "2001:db8::1",
            "::ffff:10.0.0.1",
            "::ffff:127.0.0.1",
            "64:ff9b::a00:1",
            "::10.0.0.1",
            "ff02::1",
        ] {
            assert!(!is_public(address.parse().unwrap()), "{address}");
        }
        for address in [
            "1.1.1.1",
            "8.8.8.8",
            "100.128.0.1",
            "172.32.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert!(is_public(address.parse().unwrap()), "{address}");
        }
    }

    #[test]
    fn only_https_without_credentials_is_accepted_in_production() {
        let ok = parse_url("https://hooks.example.com/b2b?x=1", Reach::PublicOnly).unwrap();
        assert_eq!(ok.host_str(), Some("hooks.example.com"));
        for bad in [
            "http://hooks.example.com/",
            "ftp://hooks.example.com/",
            "not a url",
            "https://user:pw@hooks.example.com/",
            "https://hooks.example.com/#frag",
            "file:///etc/passwd",
        ] {
            let refused = parse_url(bad, Reach::PublicOnly).unwrap_err();
            assert_eq!(code(refused), "webhook_url_not_allowed", "{bad}");
        }
        assert!(parse_url("http://127.0.0.1:9/", Reach::Anywhere).is_ok());
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_CHARS));
        assert!(parse_url(&long, Reach::Anywhere).is_err());
    }

    #[test]
    fn a_host_must_resolve_to_public_addresses_only_outside_local_and_test() {
        let public: IpAddr = "93.184.215.14".parse().unwrap();
        let private: IpAddr = "10.0.0.7".parse().unwrap();
        assert!(check_addresses("h", &[public], Reach::PublicOnly).is_ok());
        assert!(check_addresses("h", &[public, private], Reach::PublicOnly).is_err());
        assert!(check_addresses("h", &[], Reach::PublicOnly).is_err());
        assert!(check_addresses("h", &[private], Reach::Anywhere).is_ok());
        assert!(check_addresses("h", &[], Reach::Anywhere).is_err());
        assert_eq!(Reach::for_app_env("test"), Reach::Anywhere);
        assert_eq!(Reach::for_app_env("local"), Reach::Anywhere);
        assert_eq!(Reach::for_app_env("production"), Reach::PublicOnly);
        assert_eq!(Reach::for_app_env(""), Reach::PublicOnly);
    }
}
