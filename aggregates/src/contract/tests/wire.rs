//! The wire format of commands and events.
use super::*;

#[test]
fn commands_parse_from_the_wire_format_and_reject_unknown_fields() {
    let draft: C = serde_json::from_str(
        r#"{"DraftContract":{"account_id":"00000000-0000-0000-0000-000000000064",
            "title":" Support 2025 ","value":"12000.00","currency":"eur",
            "start_date":"2025-03-01","end_date":"2026-02-28","terms":"Net 30."}}"#,
    )
    .unwrap();
    assert_eq!(draft, draft_command());
    assert_eq!(draft.name(), "DraftContract");
    let amend_terms: C = serde_json::from_str(r#"{"AmendContract":{"terms":"Net 45."}}"#).unwrap();
    assert_eq!(amend_terms, amend(Some("Net 45."), None));
    let sign_json: C = serde_json::from_str(
        r#"{"SignContract":{"party":"Customer","signatory_name":"Pat","signatory_email":"p@g.test"}}"#,
    )
    .unwrap();
    assert_eq!(sign_json.name(), "SignContract");
    assert!(serde_json::from_str::<C>(r#"{"SubmitContract":{"version":1}}"#).is_err());
    assert!(serde_json::from_str::<C>(
        r#"{"RenewContract":{"new_end_date":"2027-02-30","new_value":"1"}}"#
    )
    .is_err());
    assert!(serde_json::from_str::<C>(
        r#"{"SignContract":{"party":"Witness","signatory_name":"P","signatory_email":"p@g.test"}}"#
    )
    .is_err());
}

#[test]
fn events_keep_money_as_strings_and_dates_as_iso_8601() {
    let json = serde_json::to_value(drafted()).unwrap();
    assert_eq!(json["ContractDrafted"]["value"], "12000.00");
    assert_eq!(json["ContractDrafted"]["start_date"], "2025-03-01");
    let back: E = serde_json::from_value(json).unwrap();
    assert_eq!(back, drafted());
}

/// A contract drafted from a quote before lines had units (1.0) reads its lines as pieces; the
/// current version, 1.1, keeps the quote's units.
#[test]
fn lines_copied_before_units_count_pieces() {
    use cqrs_es::DomainEvent;
    let current = drafted_from_quote();
    assert_eq!(current.event_version(), "1.1");
    let mut stored = serde_json::to_value(&current).unwrap();
    let body = &mut stored["ContractDraftedFromQuote"];
    body["lines"][0].as_object_mut().unwrap().remove("unit");
    let step = upcaster::<E>("ContractDraftedFromQuote", "1.0");
    (step.rewrite)(body).unwrap();
    let E::ContractDraftedFromQuote { lines, .. } = serde_json::from_value(stored).unwrap() else {
        panic!("not a draft from a quote")
    };
    assert_eq!(lines[0].unit, Unit::Piece);
}
