//! DelegateLevel: who may hand a level on, to whom, and how the delegate is checked again.
use super::*;

#[tokio::test]
async fn a_delegated_level_is_decided_by_the_delegate_alone() {
    expect_events(
        vec![small()],
        by(user(MANAGER), delegate(MANAGER_2)),
        vec![delegated(MANAGER, MANAGER_2)],
    )
    .await;
    let given = vec![small(), delegated(MANAGER, MANAGER_2)];
    expect_err(given.clone(), by(user(MANAGER), approve()), forbidden).await;
    expect_err(given.clone(), by(user(MANAGER), reject("no")), forbidden).await;
    expect_events(
        given,
        by(user(MANAGER_2), approve()),
        vec![approved(1, MANAGER_2, None), granted()],
    )
    .await;
}

#[tokio::test]
async fn a_tenant_admin_may_delegate_a_level_they_do_not_approve() {
    expect_events(
        vec![small()],
        by(user(ADMIN), delegate(MANAGER)),
        vec![delegated(ADMIN, MANAGER)],
    )
    .await;
}

#[tokio::test]
async fn only_the_levels_approver_or_a_tenant_admin_may_delegate() {
    for actor in [user(OPERATOR), user(REQUESTER), timer()] {
        expect_err(vec![small()], by(actor, delegate(MANAGER_2)), forbidden).await;
    }
    // Once delegated, other holders of the role no longer decide the level; the delegate does.
    let given = vec![small(), delegated(MANAGER, MANAGER_2)];
    expect_err(
        given.clone(),
        by(user(MANAGER), delegate(MANAGER)),
        forbidden,
    )
    .await;
    expect_events(
        given,
        by(user(MANAGER_2), delegate(MANAGER)),
        vec![delegated(MANAGER_2, MANAGER)],
    )
    .await;
    // Who approved an earlier level is not this level's approver.
    expect_err(
        vec![two_managers(), approved(1, MANAGER, Some(hours(24)))],
        by(user(MANAGER), delegate(MANAGER_2)),
        forbidden,
    )
    .await;
}

#[tokio::test]
async fn delegating_to_an_ineligible_user_is_refused() {
    let cases = [
        (STRANGER, RuleCode::DelegateUnknown),
        (INACTIVE_MANAGER, RuleCode::DelegateInactive),
        (OPERATOR, RuleCode::DelegateLacksRole),
        (ADMIN_2, RuleCode::DelegateLacksRole),
        (LOW_MANAGER, RuleCode::DelegateLimitTooLow),
        (USD_MANAGER, RuleCode::DelegateLimitTooLow),
        (UNLIMITED_MANAGER, RuleCode::DelegateLimitTooLow),
        (REQUESTER, RuleCode::DelegateIsRequester),
    ];
    for (to, code) in cases {
        expect_err(vec![small()], by(user(ADMIN), delegate(to)), rule(code)).await;
    }
    expect_err(
        vec![two_managers(), approved(1, MANAGER, Some(hours(24)))],
        by(user(ADMIN), delegate(MANAGER)),
        rule(RuleCode::DelegateApprovedALevel),
    )
    .await;
    let elsewhere = Command::new(id(OTHER_TENANT), user(ADMIN), t0(), delegate(MANAGER_2));
    expect_err(vec![small()], elsewhere, rule(RuleCode::DelegateUnknown)).await;
}

#[tokio::test]
async fn delegating_to_the_current_delegate_changes_nothing() {
    expect_events(
        vec![small(), delegated(MANAGER, MANAGER_2)],
        by(user(ADMIN), delegate(MANAGER_2)),
        vec![],
    )
    .await;
}

/// Delegation checks the delegate once; approval checks them again as they are now. A Manager
/// made a Viewer (or deactivated) after a level was handed to them cannot decide it, whatever
/// roles their old token still names.
#[tokio::test]
async fn a_delegate_is_checked_again_as_they_are_at_approval_time() {
    let given = vec![small(), delegated(MANAGER, MANAGER_2)];
    for now in [
        person(
            MANAGER_2,
            &[Role::Viewer],
            Some(money("100000", "EUR")),
            true,
        ),
        person(
            MANAGER_2,
            &[Role::Manager],
            Some(money("100000", "EUR")),
            false,
        ),
        person(MANAGER_2, &[Role::Manager], Some(money("10", "EUR")), true),
    ] {
        let mut users = people();
        users.retain(|u| u.user_id != id(MANAGER_2));
        users.push(now.clone());
        let services = Fake {
            users,
            policy: Some(TenantPolicy::default()),
            users_fail: false,
        };
        for command in [approve(), reject("no")] {
            let command = by(user(MANAGER_2), command);
            expect_err_with(services.clone(), given.clone(), command, forbidden).await;
        }
    }
}
