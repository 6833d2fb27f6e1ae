//! EscalateLevel: an overdue level moves up a role.
use super::*;

#[tokio::test]
async fn an_overdue_manager_level_escalates_to_tenant_admin_recording_the_breach() {
    let escalated = E::LevelEscalated {
        level: 1,
        from_role: Role::Manager,
        to_role: Role::TenantAdmin,
        overdue_since: hours(24),
        new_due_at: hours(54),
    };
    expect_events(
        vec![small()],
        at(hours(30), timer(), C::EscalateLevel {}),
        vec![escalated.clone()],
    )
    .await;
    let given = vec![small(), escalated];
    expect_err(given.clone(), by(user(MANAGER), approve()), forbidden).await;
    expect_events(
        given,
        by(user(ADMIN), approve()),
        vec![approved(1, ADMIN, None), granted()],
    )
    .await;
}

#[tokio::test]
async fn escalation_waits_until_the_level_is_due() {
    let just_before = hours(24) - Duration::seconds(1);
    expect_err(
        vec![small()],
        at(just_before, timer(), C::EscalateLevel {}),
        rule(RuleCode::LevelNotOverdue),
    )
    .await;
    expect_events(
        vec![small()],
        at(hours(24), timer(), C::EscalateLevel {}),
        vec![E::LevelEscalated {
            level: 1,
            from_role: Role::Manager,
            to_role: Role::TenantAdmin,
            overdue_since: hours(24),
            new_due_at: hours(48),
        }],
    )
    .await;
}

#[tokio::test]
async fn escalation_climbs_from_operator_and_stays_with_tenant_admins() {
    expect_events(
        vec![requested("500", &[Role::Operator])],
        at(hours(25), timer(), C::EscalateLevel {}),
        vec![E::LevelEscalated {
            level: 1,
            from_role: Role::Operator,
            to_role: Role::Manager,
            overdue_since: hours(24),
            new_due_at: hours(49),
        }],
    )
    .await;
    expect_events(
        vec![large(), approved(1, MANAGER, Some(hours(30)))],
        at(hours(31), timer(), C::EscalateLevel {}),
        vec![E::LevelEscalated {
            level: 2,
            from_role: Role::TenantAdmin,
            to_role: Role::TenantAdmin,
            overdue_since: hours(30),
            new_due_at: hours(55),
        }],
    )
    .await;
}

#[tokio::test]
async fn escalation_drops_a_delegation() {
    let escalated = E::LevelEscalated {
        level: 1,
        from_role: Role::Manager,
        to_role: Role::TenantAdmin,
        overdue_since: hours(24),
        new_due_at: hours(48),
    };
    let given = vec![small(), delegated(MANAGER, MANAGER_2), escalated];
    expect_err(given.clone(), by(user(MANAGER_2), approve()), forbidden).await;
    expect_events(
        given,
        by(user(ADMIN_2), approve()),
        vec![approved(1, ADMIN_2, None), granted()],
    )
    .await;
}

#[tokio::test]
async fn only_the_timer_escalates() {
    expect_err(
        vec![small()],
        at(hours(30), user(ADMIN), C::EscalateLevel {}),
        forbidden,
    )
    .await;
}
