//! The wire format of commands and events, and snapshots.
use super::*;

#[test]
fn commands_parse_from_the_wire_format_and_reject_unknown_fields() {
    let parse = |value: serde_json::Value| serde_json::from_value::<C>(value);
    let request_body = |subject_type: &str| {
        serde_json::json!({
            "subject_type": subject_type,
            "subject_id": id(500),
            "subject_version": 3,
            "amount": "9000.00",
            "currency": "eur",
            "requester_id": id(REQUESTER),
        })
    };
    let request = parse(serde_json::json!({ "RequestApproval": request_body("Quote") })).unwrap();
    assert_eq!(request, request_command("9000.00"));
    assert_eq!(request.name(), "RequestApproval");
    let approve = parse(serde_json::json!({ "ApproveLevel": {} })).unwrap();
    assert_eq!(approve, C::ApproveLevel { comment: None });
    let escalate = parse(serde_json::json!({ "EscalateLevel": {} })).unwrap();
    assert_eq!(escalate.name(), "EscalateLevel");
    for bad in [
        serde_json::json!({ "ApproveLevel": { "comment": "ok", "level": 2 } }),
        serde_json::json!({ "DelegateLevel": {} }),
        serde_json::json!({ "RequestApproval": request_body("Invoice") }),
        serde_json::json!({ "Nope": {} }),
    ] {
        assert!(parse(bad.clone()).is_err(), "{bad} should fail");
    }
}

#[test]
fn events_are_versioned_named_and_round_trip() {
    let events = [
        (large(), "ApprovalRequested"),
        (approved(1, MANAGER, Some(hours(24))), "LevelApproved"),
        (granted(), "ApprovalGranted"),
        (rejected(), "ApprovalRejected"),
        (delegated(MANAGER, MANAGER_2), "LevelDelegated"),
        (
            E::LevelEscalated {
                level: 1,
                from_role: Role::Manager,
                to_role: Role::TenantAdmin,
                overdue_since: hours(24),
                new_due_at: hours(48),
            },
            "LevelEscalated",
        ),
        (cancelled(), "ApprovalCancelled"),
    ];
    for (event, name) in events {
        assert_eq!(event.event_type(), name);
        assert_eq!(event.event_version(), "1.0");
        let json = serde_json::to_string(&event).unwrap();
        assert_eq!(serde_json::from_str::<E>(&json).unwrap(), event);
    }
    // Money stays an exact decimal string on the wire.
    let json = serde_json::to_value(large()).unwrap();
    assert_eq!(json["ApprovalRequested"]["amount"]["amount"], "60000.00");
}

#[test]
fn state_survives_a_snapshot() {
    let approval = replay::<Approval>(vec![large(), approved(1, MANAGER, Some(hours(30)))]);
    let json = serde_json::to_string(&approval).unwrap();
    let restored: Approval = serde_json::from_str(&json).unwrap();
    assert_eq!(serde_json::to_string(&restored).unwrap(), json);
    assert_eq!(restored.status(), Some(ApprovalStatus::Pending));
}
