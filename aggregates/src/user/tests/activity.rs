//! DeactivateUser and ReactivateUser.
use super::*;

fn deactivate(reason: &str) -> C {
    C::DeactivateUser {
        reason: reason.into(),
    }
}

#[tokio::test]
async fn deactivate_records_the_reason() {
    expect_events(
        vec![operator()],
        by(admin(), deactivate(" left ")),
        vec![deactivated()],
    )
    .await;
    expect_err(
        vec![operator()],
        by(admin(), deactivate("")),
        invalid("reason"),
    )
    .await;
}

#[tokio::test]
async fn deactivate_twice_is_a_rule_violation() {
    expect_err(
        vec![operator(), deactivated()],
        by(admin(), deactivate("again")),
        rule(RuleCode::UserDeactivated),
    )
    .await;
}

#[tokio::test]
async fn the_last_active_tenant_admin_cannot_be_deactivated() {
    expect_err_with(
        Directory::with_admins(1),
        vec![tenant_admin()],
        by(me(vec![Role::TenantAdmin]), deactivate("leaving")),
        rule(RuleCode::LastTenantAdmin),
    )
    .await;
    expect_events_with(
        Directory::with_admins(2),
        vec![tenant_admin()],
        by(admin(), deactivate("left")),
        vec![deactivated()],
    )
    .await;
    // Users who are not admins never need the count.
    expect_events_with(
        Directory::with_admins(1),
        vec![operator()],
        by(admin(), deactivate("left")),
        vec![deactivated()],
    )
    .await;
}

#[tokio::test]
async fn only_tenant_admins_deactivate() {
    for actor in [as_role(Role::Manager), me(vec![Role::Operator])] {
        expect_err(vec![operator()], by(actor, deactivate("x")), forbidden).await;
    }
}

// ReactivateUser

#[tokio::test]
async fn reactivate_only_a_deactivated_user() {
    expect_events(
        vec![operator(), deactivated()],
        by(admin(), C::ReactivateUser {}),
        vec![E::UserReactivated {}],
    )
    .await;
    expect_err(
        vec![operator()],
        by(admin(), C::ReactivateUser {}),
        rule(RuleCode::UserNotDeactivated),
    )
    .await;
    expect_err(
        vec![operator(), deactivated()],
        by(as_role(Role::Manager), C::ReactivateUser {}),
        forbidden,
    )
    .await;
}
