//! ForgetUser: erasing a user's personal data, and what a forgotten user still accepts.
use super::*;

fn forgotten() -> E {
    E::UserForgotten {}
}

/// The deactivation forgetting an active user records first.
fn deactivated_to_forget() -> E {
    E::UserDeactivated {
        reason: text("forgotten"),
    }
}

#[tokio::test]
async fn forgetting_an_active_user_deactivates_them_first() {
    expect_events(
        vec![operator()],
        by(admin(), C::ForgetUser {}),
        vec![deactivated_to_forget(), forgotten()],
    )
    .await;
}

#[tokio::test]
async fn forgetting_a_deactivated_user_only_forgets() {
    expect_events(
        vec![operator(), deactivated()],
        by(admin(), C::ForgetUser {}),
        vec![forgotten()],
    )
    .await;
}

#[tokio::test]
async fn forgetting_twice_records_nothing() {
    expect_events(
        vec![operator(), deactivated(), forgotten()],
        by(admin(), C::ForgetUser {}),
        vec![],
    )
    .await;
}

#[tokio::test]
async fn only_a_tenant_admin_forgets_not_even_the_system() {
    for actor in [
        as_role(Role::Manager),
        me(vec![Role::Operator]),
        Actor::system("some-process"),
    ] {
        expect_err(
            vec![operator()],
            by(actor.clone(), C::ForgetUser {}),
            forbidden,
        )
        .await;
        expect_err(
            vec![operator(), deactivated(), forgotten()],
            by(actor, C::ForgetUser {}),
            forbidden,
        )
        .await;
    }
}

#[tokio::test]
async fn an_unknown_user_is_not_found() {
    expect_err(vec![], by(admin(), C::ForgetUser {}), |e| {
        matches!(e, DomainError::NotFound("user"))
    })
    .await;
}

#[tokio::test]
async fn the_last_active_tenant_admin_cannot_be_forgotten() {
    expect_err_with(
        Directory::with_admins(1),
        vec![tenant_admin()],
        by(admin(), C::ForgetUser {}),
        rule(RuleCode::LastTenantAdmin),
    )
    .await;
    expect_events_with(
        Directory::with_admins(2),
        vec![tenant_admin()],
        by(admin(), C::ForgetUser {}),
        vec![deactivated_to_forget(), forgotten()],
    )
    .await;
    // A deactivated admin no longer counts, so nothing is left to keep.
    expect_events_with(
        Directory::with_admins(1),
        vec![tenant_admin(), deactivated()],
        by(admin(), C::ForgetUser {}),
        vec![forgotten()],
    )
    .await;
}

#[tokio::test]
async fn a_forgotten_user_refuses_every_other_command() {
    let history = vec![partner(), deactivated(), forgotten()];
    for command in [
        C::ChangeRoles {
            roles: vec![Role::Viewer],
            account_id: None,
        },
        C::LinkPartnerAccount {
            account_id: OTHER_ACCOUNT,
        },
        limit("100", "EUR"),
        C::ChangeEmail {
            email: "new@acme.test".into(),
        },
        C::ChangePassword {},
        C::DeactivateUser {
            reason: "again".into(),
        },
        C::ReactivateUser {},
    ] {
        expect_err(
            history.clone(),
            by(admin(), command),
            rule(RuleCode::UserForgotten),
        )
        .await;
    }
    expect_err(
        history,
        by(admin(), register_command(vec![Role::Operator], None)),
        rule(RuleCode::UserExists),
    )
    .await;
}

#[test]
fn a_forgotten_user_keeps_no_address_and_stays_inactive() {
    let user: User = replay(vec![operator(), deactivated(), forgotten()]);
    assert_eq!(user.email(), Some(&Email::erased()));
    assert_eq!(user.email().unwrap().as_str(), crate::ERASED);
    assert!(!user.facts().unwrap().active);
}

#[test]
fn forget_user_parses_from_the_wire_format() {
    let command: C = serde_json::from_str(r#"{"ForgetUser":{}}"#).unwrap();
    assert_eq!(command, C::ForgetUser {});
    assert_eq!(command.name(), "ForgetUser");
    assert_eq!(crate::CommandSet::name(&command), "ForgetUser");
    assert!(serde_json::from_str::<C>(r#"{"ForgetUser":{"reason":"x"}}"#).is_err());
    assert_eq!(
        cqrs_es::DomainEvent::event_type(&forgotten()),
        "UserForgotten"
    );
    assert_eq!(cqrs_es::DomainEvent::event_version(&forgotten()), "1.0");
}
