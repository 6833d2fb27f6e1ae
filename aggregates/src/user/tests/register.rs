//! RegisterUser.
use super::*;

#[tokio::test]
async fn register_normalises_email_name_and_roles() {
    expect_events(
        vec![],
        by(
            admin(),
            register_command(vec![Role::Operator, Role::Manager, Role::Operator], None),
        ),
        vec![registered(vec![Role::Manager, Role::Operator], None)],
    )
    .await;
}

#[tokio::test]
async fn the_system_registers_a_new_tenants_first_admin() {
    expect_events_with(
        Directory::with_admins(0),
        vec![],
        by(
            Actor::system("tenant-create"),
            register_command(vec![Role::TenantAdmin], None),
        ),
        vec![tenant_admin()],
    )
    .await;
}

#[tokio::test]
async fn only_tenant_admins_register_users() {
    for role in [Role::Manager, Role::Operator, Role::Viewer, Role::Partner] {
        expect_err(
            vec![],
            by(as_role(role), register_command(vec![Role::Viewer], None)),
            forbidden,
        )
        .await;
    }
}

#[tokio::test]
async fn register_rejects_each_invalid_field() {
    let with = |email: &str, display_name: &str, roles: Vec<Role>, user_id: Uuid| C::RegisterUser {
        user_id,
        email: email.into(),
        display_name: display_name.into(),
        roles,
        account_id: None,
    };
    let long = "x".repeat(201);
    let cases = [
        ("email", with("ann", "Ann", vec![Role::Viewer], ME)),
        (
            "display_name",
            with("a@b.test", " ", vec![Role::Viewer], ME),
        ),
        (
            "display_name",
            with("a@b.test", &long, vec![Role::Viewer], ME),
        ),
        ("roles", with("a@b.test", "Ann", vec![], ME)),
        (
            "roles",
            with("a@b.test", "Ann", vec![Role::Partner, Role::Manager], ME),
        ),
        (
            "user_id",
            with("a@b.test", "Ann", vec![Role::Viewer], Uuid::nil()),
        ),
    ];
    for (field, command) in cases {
        expect_err(vec![], by(admin(), command), invalid(field)).await;
    }
}

#[tokio::test]
async fn register_refuses_an_email_in_use_whatever_its_case() {
    let command = C::RegisterUser {
        user_id: ME,
        email: "TAKEN@acme.test".into(),
        display_name: "Ann".into(),
        roles: vec![Role::Viewer],
        account_id: None,
    };
    expect_err(vec![], by(admin(), command), rule(RuleCode::EmailInUse)).await;
}

#[tokio::test]
async fn a_partner_is_registered_with_exactly_one_account() {
    expect_events(
        vec![],
        by(
            admin(),
            register_command(vec![Role::Partner], Some(ACCOUNT)),
        ),
        vec![partner()],
    )
    .await;
    // Suspension stops new quotes and contracts, not the account's people.
    expect_events(
        vec![],
        by(
            admin(),
            register_command(vec![Role::Partner], Some(SUSPENDED_ACCOUNT)),
        ),
        vec![registered(vec![Role::Partner], Some(SUSPENDED_ACCOUNT))],
    )
    .await;
    expect_err(
        vec![],
        by(admin(), register_command(vec![Role::Partner], None)),
        rule(RuleCode::PartnerNeedsAccount),
    )
    .await;
}

#[tokio::test]
async fn only_partners_have_an_account() {
    expect_err(
        vec![],
        by(
            admin(),
            register_command(vec![Role::Operator], Some(ACCOUNT)),
        ),
        rule(RuleCode::NotAPartner),
    )
    .await;
}

#[tokio::test]
async fn a_partner_account_must_exist_in_the_tenant_and_be_open() {
    for missing in [Uuid::from_u128(999), FOREIGN_ACCOUNT] {
        expect_err(
            vec![],
            by(
                admin(),
                register_command(vec![Role::Partner], Some(missing)),
            ),
            |e| *e == DomainError::NotFound("account"),
        )
        .await;
    }
    expect_err(
        vec![],
        by(
            admin(),
            register_command(vec![Role::Partner], Some(CLOSED_ACCOUNT)),
        ),
        rule(RuleCode::AccountClosed),
    )
    .await;
}

#[tokio::test]
async fn register_twice_is_a_rule_violation() {
    expect_err(
        vec![operator()],
        by(admin(), register_command(vec![Role::Operator], None)),
        rule(RuleCode::UserExists),
    )
    .await;
}

#[tokio::test]
async fn commands_on_an_unregistered_user_are_not_found() {
    expect_err(vec![], by(admin(), C::ReactivateUser {}), |e| {
        *e == DomainError::NotFound("user")
    })
    .await;
}

#[tokio::test]
async fn a_failed_lookup_decides_nothing() {
    let services = Directory {
        failing: true,
        ..Directory::new()
    };
    expect_err_with(
        services,
        vec![],
        by(admin(), register_command(vec![Role::Viewer], None)),
        |e| matches!(e, DomainError::LookupFailed(_)),
    )
    .await;
}
