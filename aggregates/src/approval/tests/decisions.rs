//! ApproveLevel and RejectApproval: who may decide a level, and what deciding it does.
use super::*;

#[tokio::test]
async fn a_manager_approves_a_single_level_request_and_it_is_granted() {
    let command = C::ApproveLevel {
        comment: Some(" margin is fine ".into()),
    };
    let level_approved = E::LevelApproved {
        level: 1,
        approver_id: id(MANAGER),
        comment: Some(text("margin is fine")),
        next_due_at: None,
    };
    expect_events(
        vec![small()],
        by(user(MANAGER), command),
        vec![level_approved.clone(), granted()],
    )
    .await;
    let approval = replay::<Approval>(vec![small(), level_approved, granted()]);
    assert_eq!(approval.status(), Some(ApprovalStatus::Approved));
}

#[tokio::test]
async fn approving_an_earlier_level_gives_the_next_its_whole_sla() {
    expect_events(
        vec![large()],
        at(hours(30), user(MANAGER), approve()),
        vec![approved(1, MANAGER, Some(hours(54)))],
    )
    .await;
    // Level 2 was due at hour 24 when requested; its clock restarted at hour 30.
    expect_err(
        vec![large(), approved(1, MANAGER, Some(hours(54)))],
        at(hours(50), timer(), C::EscalateLevel {}),
        rule(RuleCode::LevelNotOverdue),
    )
    .await;
}

#[tokio::test]
async fn a_60000_request_completes_only_after_three_distinct_approvers() {
    let first = approved(1, MANAGER, Some(hours(24)));
    let second = approved(2, ADMIN, Some(hours(24)));
    expect_events(
        vec![large()],
        by(user(MANAGER), approve()),
        vec![first.clone()],
    )
    .await;
    expect_events(
        vec![large(), first.clone()],
        by(user(ADMIN), approve()),
        vec![second.clone()],
    )
    .await;
    let two_done = vec![large(), first, second];
    expect_err(two_done.clone(), by(user(ADMIN), approve()), forbidden).await;
    expect_events(
        two_done.clone(),
        by(user(ADMIN_2), approve()),
        vec![approved(3, ADMIN_2, None), granted()],
    )
    .await;
    assert_eq!(
        replay::<Approval>(two_done).status(),
        Some(ApprovalStatus::Pending)
    );
}

#[tokio::test]
async fn the_requester_cannot_approve_their_own_request() {
    expect_err(vec![small()], by(user(REQUESTER), approve()), forbidden).await;
}

#[tokio::test]
async fn the_same_manager_cannot_approve_two_levels() {
    let first = approved(1, MANAGER, Some(hours(24)));
    expect_err(
        vec![two_managers(), first.clone()],
        by(user(MANAGER), approve()),
        forbidden,
    )
    .await;
    expect_events(
        vec![two_managers(), first],
        by(user(MANAGER_2), approve()),
        vec![approved(2, MANAGER_2, None), granted()],
    )
    .await;
    // Holding both roles does not let one person approve a Manager and a TenantAdmin level.
    expect_err(
        vec![large(), approved(1, MANAGER_AND_ADMIN, Some(hours(24)))],
        by(user(MANAGER_AND_ADMIN), approve()),
        forbidden,
    )
    .await;
}

#[tokio::test]
async fn a_manager_whose_limit_is_below_the_amount_cannot_approve() {
    for manager in [LOW_MANAGER, USD_MANAGER, UNLIMITED_MANAGER] {
        expect_err(vec![small()], by(user(manager), approve()), forbidden).await;
    }
    let within = requested("4000", &[Role::Manager]);
    expect_events(
        vec![within],
        by(user(LOW_MANAGER), approve()),
        vec![approved(1, LOW_MANAGER, None), granted()],
    )
    .await;
    // A limit equal to the amount covers it.
    let at_limit = requested("100000.00", &[Role::Manager]);
    expect_events(
        vec![at_limit],
        by(user(MANAGER), approve()),
        vec![approved(1, MANAGER, None), granted()],
    )
    .await;
}

#[tokio::test]
async fn only_holders_of_the_levels_role_may_approve() {
    for who in [OPERATOR, ADMIN] {
        expect_err(vec![small()], by(user(who), approve()), forbidden).await;
    }
    expect_err(
        vec![large(), approved(1, MANAGER, Some(hours(24)))],
        by(user(MANAGER_2), approve()),
        forbidden,
    )
    .await;
}

#[tokio::test]
async fn deactivated_unknown_and_system_actors_cannot_approve() {
    for actor in [user(INACTIVE_MANAGER), user(STRANGER), timer()] {
        expect_err(vec![small()], by(actor, approve()), forbidden).await;
    }
    // Facts are read in the command's tenant only.
    let elsewhere = Command::new(id(OTHER_TENANT), user(MANAGER), t0(), approve());
    expect_err(vec![small()], elsewhere, forbidden).await;
}

#[tokio::test]
async fn approve_checks_the_comment() {
    for comment in ["  ", &"x".repeat(1001)] {
        let command = C::ApproveLevel {
            comment: Some(comment.to_owned()),
        };
        expect_err(
            vec![small()],
            by(user(MANAGER), command),
            invalid("comment"),
        )
        .await;
    }
}

#[tokio::test]
async fn a_failed_lookup_decides_nothing() {
    let failing = Fake {
        users: people(),
        policy: Some(TenantPolicy::default()),
        users_fail: true,
    };
    expect_err_with(failing, vec![small()], by(user(MANAGER), approve()), |e| {
        matches!(e, DomainError::LookupFailed(_))
    })
    .await;
}

#[tokio::test]
async fn nothing_is_decided_after_a_final_status() {
    let finals = [
        vec![small(), approved(1, MANAGER, None), granted()],
        vec![small(), rejected()],
        vec![small(), cancelled()],
    ];
    for given in finals {
        let commands = [
            (user(MANAGER_2), approve()),
            (user(MANAGER_2), reject("late")),
            (user(ADMIN), delegate(MANAGER_2)),
            (timer(), C::EscalateLevel {}),
            (user(REQUESTER), cancel("late")),
        ];
        for (actor, command) in commands {
            expect_err(
                given.clone(),
                at(hours(100), actor, command),
                rule(RuleCode::ApprovalClosed),
            )
            .await;
        }
    }
}

// RejectApproval

#[tokio::test]
async fn an_eligible_approver_rejects_with_a_reason_and_the_chain_ends() {
    let first = approved(1, MANAGER, Some(hours(24)));
    let expected = E::ApprovalRejected {
        subject: subject(),
        level: 2,
        approver_id: id(ADMIN),
        reason: text("margin too thin"),
    };
    expect_events(
        vec![large(), first.clone()],
        by(user(ADMIN), reject(" margin too thin ")),
        vec![expected.clone()],
    )
    .await;
    let approval = replay::<Approval>(vec![large(), first, expected]);
    assert_eq!(approval.status(), Some(ApprovalStatus::Rejected));
}

#[tokio::test]
async fn reject_needs_a_reason_and_someone_who_could_approve() {
    expect_err(
        vec![small()],
        by(user(MANAGER), reject(" ")),
        invalid("reason"),
    )
    .await;
    for who in [REQUESTER, OPERATOR, LOW_MANAGER, INACTIVE_MANAGER] {
        expect_err(vec![small()], by(user(who), reject("no")), forbidden).await;
    }
    expect_err(vec![small()], by(timer(), reject("no")), forbidden).await;
}
