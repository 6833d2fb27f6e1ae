//! ChangeEmail and ChangePassword.
use super::*;

fn change_email(to: &str) -> C {
    C::ChangeEmail { email: to.into() }
}

#[tokio::test]
async fn users_change_their_own_email_and_admins_anyones() {
    let changed = E::UserEmailChanged {
        from: email("ann@acme.test"),
        to: email("ann.b@acme.test"),
    };
    for actor in [me(vec![Role::Operator]), admin()] {
        expect_events(
            vec![operator()],
            by(actor, change_email("Ann.B@Acme.test")),
            vec![changed.clone()],
        )
        .await;
    }
}

#[tokio::test]
async fn nobody_else_changes_a_users_email() {
    for actor in [
        as_role(Role::Manager),
        Actor::user(SOMEONE, vec![Role::Partner]),
        Actor::system("anything"),
    ] {
        expect_err(
            vec![operator()],
            by(actor, change_email("x@acme.test")),
            forbidden,
        )
        .await;
    }
}

#[tokio::test]
async fn change_email_keeps_addresses_unique_and_valid() {
    expect_err(
        vec![operator()],
        by(me(vec![Role::Operator]), change_email("Taken@ACME.test")),
        rule(RuleCode::EmailInUse),
    )
    .await;
    expect_err(
        vec![operator()],
        by(me(vec![Role::Operator]), change_email("not-an-address")),
        invalid("email"),
    )
    .await;
    // The user's own address in another case is no change at all.
    expect_events(
        vec![operator()],
        by(me(vec![Role::Operator]), change_email("ANN@acme.test")),
        vec![],
    )
    .await;
}

#[tokio::test]
async fn the_own_address_does_not_count_as_taken() {
    let services = Directory {
        emails: vec![(ME, "ann.b@acme.test")],
        ..Directory::new()
    };
    expect_events_with(
        services,
        vec![operator()],
        by(me(vec![Role::Operator]), change_email("ann.b@acme.test")),
        vec![E::UserEmailChanged {
            from: email("ann@acme.test"),
            to: email("ann.b@acme.test"),
        }],
    )
    .await;
}

// ChangePassword

#[tokio::test]
async fn password_changes_record_who_changed_it() {
    expect_events(
        vec![operator()],
        by(me(vec![Role::Operator]), C::ChangePassword {}),
        vec![E::PasswordChanged { by: ME }],
    )
    .await;
    expect_events(
        vec![operator()],
        by(admin(), C::ChangePassword {}),
        vec![E::PasswordChanged { by: SOMEONE }],
    )
    .await;
}

#[tokio::test]
async fn nobody_else_changes_a_password() {
    for actor in [as_role(Role::Manager), Actor::system("anything")] {
        expect_err(vec![operator()], by(actor, C::ChangePassword {}), forbidden).await;
    }
}

#[tokio::test]
async fn a_deactivated_user_changes_nothing_but_an_admin_still_can() {
    for command in [C::ChangePassword {}, change_email("new@acme.test")] {
        expect_err(
            vec![operator(), deactivated()],
            by(me(vec![Role::Operator]), command),
            rule(RuleCode::UserDeactivated),
        )
        .await;
    }
    expect_events(
        vec![operator(), deactivated()],
        by(admin(), C::ChangePassword {}),
        vec![E::PasswordChanged { by: SOMEONE }],
    )
    .await;
}
