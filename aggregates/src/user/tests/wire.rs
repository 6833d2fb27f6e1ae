//! The facts other aggregates read, and the wire format.
use super::*;

#[test]
fn facts_follow_the_events() {
    let mut user = User::default();
    assert!(user.facts().is_none());
    for event in [
        registered(vec![Role::Manager], None),
        E::ApprovalLimitSet {
            amount: Decimal::from(5000),
            currency: CurrencyCode::parse("c", "EUR").unwrap(),
        },
        E::UserEmailChanged {
            from: email("ann@acme.test"),
            to: email("ann.b@acme.test"),
        },
        deactivated(),
    ] {
        cqrs_es::Aggregate::apply(&mut user, event);
    }
    let facts = user.facts().unwrap();
    assert_eq!(facts.user_id, ME);
    assert_eq!(facts.roles, vec![Role::Manager]);
    assert_eq!(
        facts.approval_limit,
        Some(Money::new(
            Decimal::from(5000),
            CurrencyCode::parse("c", "EUR").unwrap()
        ))
    );
    assert!(!facts.active);
    assert_eq!(user.email(), Some(&email("ann.b@acme.test")));
}

#[test]
fn commands_parse_from_the_wire_format_and_reject_unknown_fields() {
    let ok: C =
        serde_json::from_str(r#"{"SetApprovalLimit":{"amount":"1250.00","currency":"EUR"}}"#)
            .unwrap();
    assert_eq!(ok, limit("1250.00", "EUR"));
    let roles: C =
        serde_json::from_str(r#"{"ChangeRoles":{"roles":["Manager","Viewer"]}}"#).unwrap();
    assert_eq!(
        roles,
        C::ChangeRoles {
            roles: vec![Role::Manager, Role::Viewer],
            account_id: None
        }
    );
    assert_eq!(roles.name(), "ChangeRoles");
    assert!(serde_json::from_str::<C>(r#"{"ChangePassword":{"password":"x"}}"#).is_err());
    assert!(serde_json::from_str::<C>(r#"{"ChangeRoles":{"roles":["Root"]}}"#).is_err());
}

#[test]
fn no_event_carries_a_password() {
    let json = serde_json::to_string(&E::PasswordChanged { by: ME }).unwrap();
    assert_eq!(json, format!(r#"{{"PasswordChanged":{{"by":"{ME}"}}}}"#));
}
