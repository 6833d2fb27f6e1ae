//! The one place a stored payload becomes a domain event: the aggregates' stream fold, the read
//! models, the process managers and `asOf` all read events through [`decode`]. A payload stored
//! under an older version of its type's schema is first taken, step by step, through the
//! aggregate's upcasters (`aggregates::EventSchema::UPCASTERS`) to the version the code writes
//! today; one stored at a version no step leads from (written by a newer release, or changed
//! without an upcaster) is refused rather than misread.
use aggregates::EventSchema;
use serde_json::Value;

use crate::{StoreError, StoredEvent};

/// `payload`, stored as `event_type` at `version`, as the event the code means by it today.
pub fn decode<E: EventSchema>(
    event_type: &str,
    version: &str,
    mut payload: Value,
) -> Result<E, StoreError> {
    let undecodable = |reason: String| StoreError::Undecodable {
        event_type: event_type.to_owned(),
        version: version.to_owned(),
        reason,
    };
    let mut reached = version;
    // Each step moves to another version, so the chain is at most as long as the list.
    for _ in 0..E::UPCASTERS.len() {
        let Some(step) = E::UPCASTERS
            .iter()
            .find(|step| step.event_type == event_type && step.from == reached)
        else {
            break;
        };
        let body = payload
            .get_mut(event_type)
            .ok_or_else(|| undecodable(format!("the payload is no {event_type}")))?;
        (step.rewrite)(body)
            .map_err(|e| undecodable(format!("{} → {}: {e}", step.from, step.to)))?;
        reached = step.to;
    }
    checked((event_type, version), reached, E::deserialize(payload))
}

/// The event deserialized from a payload upcast to version `reached`, if it is the event
/// the stored type names at that version.
fn checked<E: EventSchema>(
    (event_type, version): (&str, &str),
    reached: &str,
    event: Result<E, serde_json::Error>,
) -> Result<E, StoreError> {
    let undecodable = |reason: String| StoreError::Undecodable {
        event_type: event_type.to_owned(),
        version: version.to_owned(),
        reason,
    };
    let event = event.map_err(|e| undecodable(e.to_string()))?;
    if event.event_type() != event_type {
        return Err(undecodable(format!(
            "the payload is a {}",
            event.event_type()
        )));
    }
    if event.event_version() != reached {
        return Err(undecodable(format!(
            "no upcaster leads from version {reached} to {}",
            event.event_version()
        )));
    }
    Ok(event)
}

/// [`decode`] for an event read with its columns.
pub fn decode_stored<E: EventSchema>(event: &StoredEvent) -> Result<E, StoreError> {
    let (event_type, version) = (event.event_type.as_str(), event.event_version.as_str());
    if E::UPCASTERS
        .iter()
        .any(|step| step.event_type == event_type && step.from == version)
    {
        return decode(event_type, version, event.payload.clone());
    }
    // Nothing to rewrite: read the payload where it is rather than from a copy.
    checked(
        (event_type, version),
        version,
        E::deserialize(&event.payload),
    )
}

#[cfg(test)]
mod tests {
    use aggregates::account::AccountEvent;
    use aggregates::quote::QuoteEvent;
    use serde_json::json;

    use super::*;

    fn submitted(subtotal: &str) -> Value {
        let money = |amount: &str| json!({"amount": amount, "currency": "EUR"});
        json!({"QuoteSubmitted": {
            "submission": 1,
            "requester": "00000000-0000-0000-0000-000000000001",
            "totals": {"subtotal": money(subtotal), "line_discounts": money("7.75"),
                       "quote_discount": money("0.00"), "total": money("347.25")},
            "discount_percent": "0", "needs_approval": false, "approval_chain": []}})
    }

    fn subtotal(event: QuoteEvent) -> String {
        match event {
            QuoteEvent::QuoteSubmitted { totals, .. } => totals.subtotal.amount.to_string(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_older_version_is_upcast_and_the_current_one_read_as_stored() {
        // 1.0 stored the subtotal net of the line discounts; 1.1 stores the gross one.
        let old: QuoteEvent = decode("QuoteSubmitted", "1.0", submitted("347.25")).unwrap();
        assert_eq!(subtotal(old), "355.00");
        let current: QuoteEvent = decode("QuoteSubmitted", "1.1", submitted("355.00")).unwrap();
        assert_eq!(subtotal(current), "355.00");
    }

    #[test]
    fn steps_chain_from_the_stored_version_to_the_current_one() {
        // QuoteAccepted 1.0 → 1.1 (gross subtotal) → 1.2 (lines have units).
        let mut stored = submitted("347.25");
        let body = stored["QuoteSubmitted"].take();
        let line = json!({"line_id": "00000000-0000-0000-0000-000000000009", "sku": "S",
            "description": "D", "quantity": "10", "unit_price": "35.50",
            "volume_discount_percent": "0"});
        let accepted = json!({"QuoteAccepted": {"account_id": "00000000-0000-0000-0000-000000000002",
            "title": "T", "lines": [line], "totals": body["totals"]}});
        let QuoteEvent::QuoteAccepted { lines, totals, .. } =
            decode("QuoteAccepted", "1.0", accepted).unwrap()
        else {
            panic!("not a QuoteAccepted")
        };
        assert_eq!(totals.subtotal.amount.to_string(), "355.00");
        assert_eq!(lines[0].unit, aggregates::quote::Unit::Piece);
    }

    #[test]
    fn a_version_no_step_leads_from_is_refused_not_misread() {
        let error = decode::<QuoteEvent>("QuoteSubmitted", "2.0", submitted("355.00")).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("no upcaster leads from version 2.0 to 1.1"),
            "{error}"
        );
    }

    #[test]
    fn a_body_an_upcaster_cannot_read_is_refused_not_a_panic() {
        for body in [
            json!([]),
            json!({"totals": 1}),
            json!({"lines": {}}),
            json!(null),
        ] {
            for (event_type, version) in [("QuoteSubmitted", "1.0"), ("QuoteAccepted", "1.1")] {
                let payload = json!({ event_type: body.clone() });
                let refused = decode::<QuoteEvent>(event_type, version, payload);
                assert!(
                    matches!(refused, Err(StoreError::Undecodable { .. })),
                    "{event_type} {version} {body}"
                );
            }
        }
    }

    #[test]
    fn a_payload_filed_under_another_type_or_aggregate_is_refused() {
        let error = decode::<QuoteEvent>("QuoteApproved", "1.0", submitted("1")).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("the payload is a QuoteSubmitted"),
            "{error}"
        );
        let error = decode::<AccountEvent>("QuoteSubmitted", "1.1", submitted("1")).unwrap_err();
        assert!(matches!(error, StoreError::Undecodable { .. }), "{error}");
    }
}
