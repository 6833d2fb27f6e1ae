//! Commands as clients send them, events as they are stored.
use cqrs_es::DomainEvent;
use serde_json::json;

use super::*;

fn parse(value: serde_json::Value) -> Result<C, serde_json::Error> {
    serde_json::from_value(value)
}

#[test]
fn commands_parse_decimal_strings_and_iso_dates() {
    let draft = parse(json!({"DraftQuote": {
        "account_id": account(),
        "title": "Q1",
        "valid_until": "2025-02-09T12:00:00Z"
    }}))
    .unwrap();
    assert_eq!(
        draft,
        C::DraftQuote {
            account_id: account(),
            title: "Q1".into(),
            valid_until: valid_until(),
        }
    );
    let add = parse(json!({"AddLineItem": {
        "line_id": line_id(1),
        "sku": "S",
        "description": "D",
        "quantity": "2.5",
        "unit_price": "1250.00"
    }}))
    .unwrap();
    assert_eq!(
        add,
        C::AddLineItem {
            line_id: line_id(1),
            sku: "S".into(),
            description: "D".into(),
            quantity: dec("2.5"),
            unit: Unit::Piece,
            unit_price: dec("1250.00"),
        }
    );
    let submit = parse(json!({"SubmitQuote": {}})).unwrap();
    assert_eq!(submit.name(), "SubmitQuote");
}

#[test]
fn change_line_item_fields_are_optional() {
    let change = parse(json!({"ChangeLineItem": {
        "line_id": line_id(1),
        "unit_price": "9.99"
    }}))
    .unwrap();
    assert_eq!(
        change,
        C::ChangeLineItem {
            line_id: line_id(1),
            quantity: None,
            unit_price: Some(dec("9.99")),
            description: None,
        }
    );
}

#[test]
fn commands_refuse_unknown_fields_types_and_float_money() {
    let bad = [
        json!({"SubmitQuote": {"force": true}}),
        json!({"ApproveQuote": {}}),
        json!({"SetQuoteDiscount": {"percent": 12.5, "reason": "x"}}),
        json!({"DraftQuote": {"account_id": account(), "title": "x", "valid_until": "soon"}}),
    ];
    for value in bad {
        assert!(parse(value.clone()).is_err(), "{value} should be refused");
    }
}

#[test]
fn every_command_has_its_name() {
    let commands = [
        (
            json!({"RemoveLineItem": {"line_id": line_id(1)}}),
            "RemoveLineItem",
        ),
        (
            json!({"MarkQuoteApproved": {"approval_id": approval()}}),
            "MarkQuoteApproved",
        ),
        (
            json!({"MarkQuoteRejected": {"approval_id": approval(), "reason": "r"}}),
            "MarkQuoteRejected",
        ),
        (json!({"ReviseQuote": {}}), "ReviseQuote"),
        (json!({"SendQuote": {}}), "SendQuote"),
        (json!({"AcceptQuote": {}}), "AcceptQuote"),
        (json!({"DeclineQuote": {"reason": "r"}}), "DeclineQuote"),
        (json!({"WithdrawQuote": {"reason": "r"}}), "WithdrawQuote"),
        (json!({"ExpireQuote": {}}), "ExpireQuote"),
        (
            json!({"SetQuoteDiscount": {"percent": "5", "reason": "r"}}),
            "SetQuoteDiscount",
        ),
    ];
    for (value, name) in commands {
        assert_eq!(parse(value).unwrap().name(), name);
    }
}

#[test]
fn a_line_item_added_without_a_unit_counts_pieces() {
    let step = upcaster::<E>("LineItemAdded", "1.0");
    let mut stored = json!({"line_id": line_id(1), "sku": "S", "description": "D",
        "quantity": "2", "unit_price": "3.00", "volume_discount_percent": "0"});
    (step.rewrite)(&mut stored).unwrap();
    assert_eq!(stored["unit"], "Piece");
    let with_unit = parse(json!({"AddLineItem": {"line_id": line_id(1), "sku": "S",
        "description": "D", "quantity": "2", "unit": "Hour", "unit_price": "3.00"}}));
    assert!(matches!(
        with_unit,
        Ok(C::AddLineItem {
            unit: Unit::Hour,
            ..
        })
    ));
    let unknown = parse(json!({"AddLineItem": {"line_id": line_id(1), "sku": "S",
        "description": "D", "quantity": "2", "unit": "Furlong", "unit_price": "3.00"}}));
    assert!(unknown.is_err());
}

#[test]
fn events_are_versioned_and_round_trip() {
    let mut events = sent();
    events.push(E::QuoteDeclined { reason: text("no") });
    for event in events {
        // Changed schemas: the gross subtotal (1.1), then lines with units (1.1, 1.2).
        let version = match event {
            E::QuoteAccepted { .. } => "1.2",
            E::QuoteSubmitted { .. } | E::LineItemAdded { .. } => "1.1",
            _ => "1.0",
        };
        assert_eq!(event.event_version(), version, "{}", event.event_type());
        let stored = serde_json::to_value(&event).unwrap();
        assert_eq!(
            stored.as_object().unwrap().keys().next().unwrap(),
            &event.event_type()
        );
        let back: E = serde_json::from_value(stored).unwrap();
        assert_eq!(back, event);
    }
}

#[test]
fn submitted_carries_money_as_decimal_strings() {
    let stored = serde_json::to_value(submitted(true)).unwrap();
    let submitted = &stored["QuoteSubmitted"];
    assert_eq!(
        submitted["totals"]["total"],
        json!({"amount": "347.25", "currency": "EUR"})
    );
    assert_eq!(submitted["totals"]["quote_discount"]["amount"], "0.00");
    assert_eq!(submitted["requester"], json!(user()));
    assert_eq!(submitted["needs_approval"], true);
    assert_eq!(submitted["approval_chain"], json!(["Manager"]));
}
