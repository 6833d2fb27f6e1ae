//! The wire format of commands.
use super::*;

#[test]
fn commands_parse_from_the_wire_format_and_reject_unknown_fields() {
    let ok: C = serde_json::from_str(r#"{"SetCreditLimit":{"amount":"1250.00"}}"#).unwrap();
    assert_eq!(
        ok,
        C::SetCreditLimit {
            amount: Decimal::new(125_000, 2)
        }
    );
    assert!(serde_json::from_str::<C>(r#"{"ChangeTier":{"tier":"Gold","x":1}}"#).is_err());
    assert!(serde_json::from_str::<C>(r#"{"Nope":{}}"#).is_err());
}
