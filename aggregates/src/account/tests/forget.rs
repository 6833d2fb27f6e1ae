//! ForgetContactData: erasing the account's contacts, on any status, once per new contact.
use super::*;

fn forgotten() -> E {
    E::AccountContactDataForgotten {}
}

fn update(legal_name: Option<&str>, name: Option<&str>) -> E {
    E::AccountDetailsUpdated {
        name: name.map(text),
        legal_name: legal_name.map(text),
        country: None,
        billing_email: None,
    }
}

#[tokio::test]
async fn a_tenant_admin_forgets_the_contact_data() {
    expect_events(
        vec![opened(), activated()],
        by(admin(), C::ForgetContactData {}),
        vec![forgotten()],
    )
    .await;
}

#[tokio::test]
async fn only_a_tenant_admin_forgets_not_even_the_system() {
    for actor in [
        as_role(Role::Manager),
        as_role(Role::Operator),
        Actor::system("some-process"),
    ] {
        expect_err(
            vec![opened()],
            by(actor, C::ForgetContactData {}),
            forbidden,
        )
        .await;
    }
}

#[tokio::test]
async fn an_unknown_account_is_not_found() {
    expect_err(vec![], by(admin(), C::ForgetContactData {}), |e| {
        matches!(e, DomainError::NotFound("account"))
    })
    .await;
}

#[tokio::test]
async fn forgetting_again_is_recorded_again() {
    // Contact data may have been sealed since on streams the account cannot see (a signature
    // on one of its contracts): each forgetting destroys whatever keys the account has now.
    expect_events(
        vec![opened(), forgotten()],
        by(admin(), C::ForgetContactData {}),
        vec![forgotten()],
    )
    .await;
}

#[tokio::test]
async fn closed_and_suspended_accounts_are_forgotten_too() {
    let closed = E::AccountClosed { reason: text("x") };
    let suspended = E::AccountSuspended { reason: text("x") };
    for history in [
        vec![opened(), closed.clone()],
        vec![opened(), activated(), suspended],
    ] {
        expect_events(
            history,
            by(admin(), C::ForgetContactData {}),
            vec![forgotten()],
        )
        .await;
    }
    // Only erasure gets through: the closed account still refuses changes.
    expect_err(
        vec![opened(), closed],
        by(as_role(Role::Manager), C::ForgetContactData {}),
        forbidden,
    )
    .await;
}

#[tokio::test]
async fn a_forgotten_account_still_takes_new_details() {
    expect_events(
        vec![opened(), forgotten()],
        by(
            admin(),
            C::UpdateAccountDetails {
                name: None,
                legal_name: Some("Globex GmbH".into()),
                country: None,
                billing_email: None,
            },
        ),
        vec![update(Some("Globex GmbH"), None)],
    )
    .await;
}

#[test]
fn forget_contact_data_parses_from_the_wire_format() {
    let command: C = serde_json::from_str(r#"{"ForgetContactData":{}}"#).unwrap();
    assert_eq!(command, C::ForgetContactData {});
    assert_eq!(command.name(), "ForgetContactData");
    assert_eq!(crate::CommandSet::name(&command), "ForgetContactData");
    assert_eq!(
        cqrs_es::DomainEvent::event_type(&forgotten()),
        "AccountContactDataForgotten"
    );
    assert_eq!(cqrs_es::DomainEvent::event_version(&forgotten()), "1.0");
}
