//! ChangeRoles and LinkPartnerAccount.
use super::*;

#[tokio::test]
async fn change_roles_records_old_and_new_and_ignores_the_same_roles() {
    expect_events(
        vec![operator()],
        by(
            admin(),
            C::ChangeRoles {
                roles: vec![Role::Operator, Role::Manager],
                account_id: None,
            },
        ),
        vec![E::UserRolesChanged {
            from: vec![Role::Operator],
            to: vec![Role::Manager, Role::Operator],
            account_id: None,
        }],
    )
    .await;
    expect_events(
        vec![operator()],
        by(
            admin(),
            C::ChangeRoles {
                roles: vec![Role::Operator],
                account_id: None,
            },
        ),
        vec![],
    )
    .await;
}

#[tokio::test]
async fn only_tenant_admins_change_roles_even_their_own() {
    for actor in [as_role(Role::Manager), me(vec![Role::Operator])] {
        expect_err(
            vec![operator()],
            by(
                actor,
                C::ChangeRoles {
                    roles: vec![Role::TenantAdmin],
                    account_id: None,
                },
            ),
            forbidden,
        )
        .await;
    }
}

#[tokio::test]
async fn change_roles_rejects_invalid_role_sets() {
    for roles in [vec![], vec![Role::Partner, Role::Viewer]] {
        expect_err(
            vec![operator()],
            by(
                admin(),
                C::ChangeRoles {
                    roles,
                    account_id: Some(ACCOUNT),
                },
            ),
            invalid("roles"),
        )
        .await;
    }
}

#[tokio::test]
async fn the_last_active_tenant_admin_keeps_the_role() {
    let demote = || C::ChangeRoles {
        roles: vec![Role::Manager],
        account_id: None,
    };
    expect_err_with(
        Directory::with_admins(1),
        vec![tenant_admin()],
        by(me(vec![Role::TenantAdmin]), demote()),
        rule(RuleCode::LastTenantAdmin),
    )
    .await;
    let demoted = E::UserRolesChanged {
        from: vec![Role::TenantAdmin],
        to: vec![Role::Manager],
        account_id: None,
    };
    expect_events_with(
        Directory::with_admins(2),
        vec![tenant_admin()],
        by(admin(), demote()),
        vec![demoted.clone()],
    )
    .await;
    // A deactivated admin is not one of the active ones the tenant relies on.
    expect_events_with(
        Directory::with_admins(1),
        vec![tenant_admin(), deactivated()],
        by(admin(), demote()),
        vec![demoted],
    )
    .await;
}

#[tokio::test]
async fn becoming_a_partner_needs_an_account_and_leaving_drops_it() {
    expect_events(
        vec![operator()],
        by(
            admin(),
            C::ChangeRoles {
                roles: vec![Role::Partner],
                account_id: Some(ACCOUNT),
            },
        ),
        vec![E::UserRolesChanged {
            from: vec![Role::Operator],
            to: vec![Role::Partner],
            account_id: Some(ACCOUNT),
        }],
    )
    .await;
    expect_err(
        vec![operator()],
        by(
            admin(),
            C::ChangeRoles {
                roles: vec![Role::Partner],
                account_id: None,
            },
        ),
        rule(RuleCode::PartnerNeedsAccount),
    )
    .await;
    expect_err(
        vec![operator()],
        by(
            admin(),
            C::ChangeRoles {
                roles: vec![Role::Partner],
                account_id: Some(CLOSED_ACCOUNT),
            },
        ),
        rule(RuleCode::AccountClosed),
    )
    .await;
    expect_events(
        vec![partner()],
        by(
            admin(),
            C::ChangeRoles {
                roles: vec![Role::Viewer],
                account_id: None,
            },
        ),
        vec![E::UserRolesChanged {
            from: vec![Role::Partner],
            to: vec![Role::Viewer],
            account_id: None,
        }],
    )
    .await;
    expect_err(
        vec![partner()],
        by(
            admin(),
            C::ChangeRoles {
                roles: vec![Role::Viewer],
                account_id: Some(ACCOUNT),
            },
        ),
        rule(RuleCode::NotAPartner),
    )
    .await;
}

#[tokio::test]
async fn a_partner_is_moved_with_link_partner_account_not_change_roles() {
    let keep = |account_id| C::ChangeRoles {
        roles: vec![Role::Partner],
        account_id,
    };
    expect_events(vec![partner()], by(admin(), keep(None)), vec![]).await;
    expect_events(vec![partner()], by(admin(), keep(Some(ACCOUNT))), vec![]).await;
    expect_err(
        vec![partner()],
        by(admin(), keep(Some(OTHER_ACCOUNT))),
        rule(RuleCode::PartnerMovedByLinkOnly),
    )
    .await;
}

// LinkPartnerAccount

#[tokio::test]
async fn link_partner_account_moves_a_partner_once() {
    expect_events(
        vec![partner()],
        by(
            admin(),
            C::LinkPartnerAccount {
                account_id: OTHER_ACCOUNT,
            },
        ),
        vec![E::PartnerAccountLinked {
            account_id: OTHER_ACCOUNT,
            previous_account_id: Some(ACCOUNT),
        }],
    )
    .await;
    expect_events(
        vec![partner()],
        by(
            admin(),
            C::LinkPartnerAccount {
                account_id: ACCOUNT,
            },
        ),
        vec![],
    )
    .await;
}

#[tokio::test]
async fn link_partner_account_is_refused_for_non_partners_and_bad_accounts() {
    expect_err(
        vec![operator()],
        by(
            admin(),
            C::LinkPartnerAccount {
                account_id: ACCOUNT,
            },
        ),
        rule(RuleCode::NotAPartner),
    )
    .await;
    expect_err(
        vec![partner()],
        by(
            admin(),
            C::LinkPartnerAccount {
                account_id: FOREIGN_ACCOUNT,
            },
        ),
        |e| *e == DomainError::NotFound("account"),
    )
    .await;
    expect_err(
        vec![partner()],
        by(
            admin(),
            C::LinkPartnerAccount {
                account_id: CLOSED_ACCOUNT,
            },
        ),
        rule(RuleCode::AccountClosed),
    )
    .await;
}

#[tokio::test]
async fn only_tenant_admins_link_partners() {
    for actor in [as_role(Role::Manager), me(vec![Role::Partner])] {
        expect_err(
            vec![partner()],
            by(
                actor,
                C::LinkPartnerAccount {
                    account_id: OTHER_ACCOUNT,
                },
            ),
            forbidden,
        )
        .await;
    }
}
