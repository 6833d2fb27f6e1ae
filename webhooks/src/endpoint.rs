//! The rules of a webhook endpoint, decided before anything is stored: who may manage
//! endpoints, what an endpoint's URL, event types and description may be. Pure: the host's
//! addresses are resolved by the caller (`store`) and handed in, as aggregates get their facts.
use std::collections::BTreeSet;
use std::net::IpAddr;

use aggregates::{Actor, DomainError, Role, Text};
use url::Url;

use crate::target::{self, Reach};

/// Most event types one endpoint subscribes to.
pub const MAX_EVENT_TYPES: usize = 50;
/// Longest event type name.
pub const MAX_EVENT_TYPE_CHARS: usize = 64;
/// Subscribes to every event type.
pub const ALL_EVENTS: &str = "*";
/// Longest description (the commands' one limit for a field of that name).
pub const MAX_DESCRIPTION_CHARS: usize = aggregates::limits::DESCRIPTION_MAX;

/// Only a TenantAdmin (a user, or an API key granted the role) manages webhook endpoints:
/// they receive the tenant's events, Partner accounts' included.
pub fn may_manage(actor: &Actor) -> Result<(), DomainError> {
    actor.require_any(&[Role::TenantAdmin], "managing webhooks")
}

/// A URL in an acceptable form, with the host the caller must resolve (see [`decide_url`]).
pub fn parse_url(raw: &str, reach: Reach) -> Result<Url, DomainError> {
    target::parse_url(raw, reach)
}

/// The URL rule as a whole: its form, and every address its host resolved to (`addresses`,
/// gathered just before deciding) in reach.
pub fn decide_url(url: &Url, addresses: &[IpAddr], reach: Reach) -> Result<(), DomainError> {
    target::check_addresses(url.host_str().unwrap_or_default(), addresses, reach)
}

/// The event types, sorted and without duplicates: each exactly an event's type name
/// (`QuoteSubmitted`) or `*` for all of them, at least one and at most [`MAX_EVENT_TYPES`]
/// given (as the API document states them).
pub fn event_types(raw: Vec<String>) -> Result<Vec<String>, DomainError> {
    if raw.is_empty() {
        return Err(DomainError::invalid(
            "event_types",
            "name at least one event type",
        ));
    }
    if raw.len() > MAX_EVENT_TYPES {
        return Err(DomainError::invalid(
            "event_types",
            format!("at most {MAX_EVENT_TYPES} event types"),
        ));
    }
    let names: BTreeSet<String> = raw.into_iter().collect();
    for name in &names {
        let well_formed = name == ALL_EVENTS
            || (name.len() <= MAX_EVENT_TYPE_CHARS
                && name.starts_with(|c: char| c.is_ascii_uppercase())
                && name.chars().all(|c| c.is_ascii_alphanumeric()));
        if !well_formed {
            return Err(DomainError::invalid(
                "event_types",
                format!(
                    "`{name}` is not an event type name (PascalCase, as `QuoteSubmitted`) or `*`"
                ),
            ));
        }
    }
    Ok(names.into_iter().collect())
}

/// The description: empty when absent, else text as every command's `description` is
/// (trimmed, not blank, no control characters, at most [`MAX_DESCRIPTION_CHARS`]).
pub fn description(raw: Option<String>) -> Result<String, DomainError> {
    match raw {
        None => Ok(String::new()),
        Some(text) => Ok(Text::parse("description", &text, MAX_DESCRIPTION_CHARS)?
            .as_str()
            .to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn field(error: DomainError) -> String {
        match error {
            DomainError::InvalidField { field, .. } => field,
            DomainError::Forbidden(_) => "forbidden".into(),
            other => other.to_string(),
        }
    }

    #[test]
    fn only_a_tenant_admin_manages_webhooks() {
        let user = |roles| Actor::User {
            user_id: Uuid::nil(),
            roles,
            account_id: None,
        };
        assert!(may_manage(&user(vec![Role::TenantAdmin])).is_ok());
        for role in [Role::Manager, Role::Operator, Role::Viewer, Role::Partner] {
            assert_eq!(
                field(may_manage(&user(vec![role])).unwrap_err()),
                "forbidden"
            );
        }
    }

    #[test]
    fn event_types_are_names_or_star_sorted_and_deduplicated() {
        let types = |names: &[&str]| event_types(names.iter().map(|n| n.to_string()).collect());
        assert_eq!(
            types(&["QuoteSubmitted", "AccountOpened", "QuoteSubmitted"]).unwrap(),
            vec!["AccountOpened", "QuoteSubmitted"]
        );
        assert_eq!(types(&["*"]).unwrap(), vec!["*"]);
        for bad in [
            &[][..],
            &["quote.submitted"],
            &["Quote Submitted"],
            &[" QuoteSubmitted"],
            &[""],
            &["Q*"],
        ] {
            assert_eq!(field(types(bad).unwrap_err()), "event_types", "{bad:?}");
        }
        let many: Vec<String> = (0..=MAX_EVENT_TYPES).map(|i| format!("Event{i}")).collect();
        assert_eq!(field(event_types(many).unwrap_err()), "event_types");
        let repeated = vec!["QuoteSent".to_owned(); MAX_EVENT_TYPES + 1];
        assert_eq!(field(event_types(repeated).unwrap_err()), "event_types");
    }

    #[test]
    fn an_absent_description_is_empty_and_a_blank_or_long_one_refused() {
        assert_eq!(description(None).unwrap(), "");
        assert_eq!(
            field(description(Some("  ".into())).unwrap_err()),
            "description"
        );
        assert_eq!(description(Some(" ERP ".into())).unwrap(), "ERP");
        let long = "x".repeat(MAX_DESCRIPTION_CHARS + 1);
        assert_eq!(field(description(Some(long)).unwrap_err()), "description");
    }
}
