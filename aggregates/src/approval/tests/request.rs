//! RequestApproval: the chain and SLA the policy gives, and a repeated request.
use super::*;

#[tokio::test]
async fn a_9000_request_needs_one_manager_due_after_the_sla() {
    expect_events(
        vec![],
        by(timer(), request_command("9000.00")),
        vec![small()],
    )
    .await;
    assert_eq!(
        replay::<Approval>(vec![small()]).status(),
        Some(ApprovalStatus::Pending)
    );
}

#[tokio::test]
async fn a_60000_request_gets_manager_tenant_admin_and_tenant_admin() {
    expect_events(
        vec![],
        by(timer(), request_command("60000.00")),
        vec![large()],
    )
    .await;
}

#[tokio::test]
async fn the_chain_and_sla_follow_the_tenants_policy() {
    let policy = TenantPolicy {
        level_sla_hours: 8,
        ..eur_bands(vec![
            ApprovalBand {
                up_to: Some(Decimal::from(1_000)),
                levels: vec![Role::Operator],
            },
            ApprovalBand {
                up_to: None,
                levels: vec![Role::Manager, Role::Manager],
            },
        ])
    };
    let expected = |amount: &str, roles: &[Role]| E::ApprovalRequested {
        subject: subject(),
        amount: money(amount, "EUR"),
        requester_id: id(REQUESTER),
        levels: roles
            .iter()
            .map(|&role| Level {
                role,
                due_at: hours(8),
            })
            .collect(),
    };
    expect_events_with(
        tenant_with(Some(policy.clone())),
        vec![],
        by(timer(), request_command("1000")),
        vec![expected("1000", &[Role::Operator])],
    )
    .await;
    expect_events_with(
        tenant_with(Some(policy)),
        vec![],
        by(timer(), request_command("1000.01")),
        vec![expected("1000.01", &[Role::Manager, Role::Manager])],
    )
    .await;
}

#[tokio::test]
async fn users_cannot_request_approval() {
    for who in [ADMIN, REQUESTER] {
        expect_err(vec![], by(user(who), request_command("9000")), forbidden).await;
    }
}

#[tokio::test]
async fn request_rejects_each_invalid_field() {
    let with =
        |amount: &str, currency: &str, subject_id: Uuid, requester_id: Uuid| C::RequestApproval {
            subject_type: SubjectType::Contract,
            subject_id,
            subject_version: 1,
            amount: amount.parse().unwrap(),
            currency: currency.into(),
            requester_id,
        };
    let cases = [
        ("currency", with("10", "euro", id(500), id(REQUESTER))),
        ("amount", with("-1", "EUR", id(500), id(REQUESTER))),
        ("amount", with("1.0001", "EUR", id(500), id(REQUESTER))),
        ("subject_id", with("10", "EUR", Uuid::nil(), id(REQUESTER))),
        ("requester_id", with("10", "EUR", id(500), Uuid::nil())),
    ];
    for (field, command) in cases {
        expect_err(vec![], by(timer(), command), invalid(field)).await;
    }
    for command in [
        with("1.001", "EUR", id(500), id(REQUESTER)),
        with("1.5", "JPY", id(500), id(REQUESTER)),
    ] {
        expect_err(
            vec![],
            by(timer(), command),
            rule(RuleCode::TooManyDecimals),
        )
        .await;
    }
}

#[tokio::test]
async fn requesting_again_for_the_same_submission_changes_nothing() {
    for given in [
        vec![small()],
        vec![small(), approved(1, MANAGER, None), granted()],
    ] {
        expect_events(given, by(timer(), request_command("9000")), vec![]).await;
    }
    let other_version = C::RequestApproval {
        subject_type: SubjectType::Quote,
        subject_id: id(500),
        subject_version: 4,
        amount: "9000".parse().unwrap(),
        currency: "EUR".into(),
        requester_id: id(REQUESTER),
    };
    expect_err(
        vec![small()],
        by(timer(), other_version),
        rule(RuleCode::ApprovalExists),
    )
    .await;
    expect_err(
        vec![small()],
        by(timer(), request_command("9500")),
        rule(RuleCode::ApprovalExists),
    )
    .await;
}

#[tokio::test]
async fn request_needs_a_readable_policy_that_names_approvers() {
    let request = || by(timer(), request_command("9000"));
    expect_err_with(tenant_with(None), vec![], request(), |e| {
        matches!(e, DomainError::LookupFailed(_))
    })
    .await;
    let empty = eur_bands(vec![]);
    expect_err_with(
        tenant_with(Some(empty)),
        vec![],
        request(),
        rule(RuleCode::NoApprovalChain),
    )
    .await;
    let viewers = eur_bands(vec![ApprovalBand {
        up_to: None,
        levels: vec![Role::Manager, Role::Viewer],
    }]);
    expect_err_with(
        tenant_with(Some(viewers)),
        vec![],
        request(),
        rule(RuleCode::InvalidApprovalChain),
    )
    .await;
}

#[tokio::test]
async fn commands_before_the_request_are_not_found() {
    for command in [
        approve(),
        reject("no"),
        delegate(MANAGER),
        C::EscalateLevel {},
        cancel("no"),
    ] {
        expect_err(vec![], by(user(MANAGER), command), |e| {
            *e == DomainError::NotFound("approval")
        })
        .await;
    }
}
