//! The term: ActivateContract, RenewContract, TerminateContract and ExpireContract.
use super::*;

#[tokio::test]
async fn activation_comes_on_the_start_date_once_approved_and_signed() {
    expect_events(
        signed_history(),
        at(system(), START, C::ActivateContract {}),
        vec![activated()],
    )
    .await;
    let late = days_after(START, 3);
    expect_events(
        signed_history(),
        at(system(), &late, C::ActivateContract {}),
        vec![E::ContractActivated {
            account_id: ACCOUNT,
            activated_on: date(&late),
        }],
    )
    .await;
    expect_err(
        signed_history(),
        at(system(), &days_before(START, 1), C::ActivateContract {}),
        rule(RuleCode::BeforeStartDate),
    )
    .await;
}

#[tokio::test]
async fn activation_needs_both_signatures_and_an_approval() {
    expect_err(
        with(approved_history(), signed(Party::Customer)),
        by(system(), C::ActivateContract {}),
        rule(RuleCode::ContractNotSigned),
    )
    .await;
    expect_err(
        pending(),
        by(system(), C::ActivateContract {}),
        rule(RuleCode::ContractNotApproved),
    )
    .await;
}

#[tokio::test]
async fn activation_is_the_timers_and_happens_once() {
    expect_err(
        signed_history(),
        by(as_role(Role::TenantAdmin), C::ActivateContract {}),
        forbidden,
    )
    .await;
    expect_events(active(), by(system(), C::ActivateContract {}), vec![]).await;
}

// RenewContract

fn renew(new_end_date: &str, new_value: &str) -> C {
    C::RenewContract {
        new_end_date: date(new_end_date),
        new_value: money(new_value),
    }
}

fn renewed(term: u32, previous_end: &str, new_end: &str, reactivated: bool) -> E {
    E::ContractRenewed {
        account_id: ACCOUNT,
        term,
        previous_end_date: date(previous_end),
        new_end_date: date(new_end),
        new_value: money("13000.00"),
        currency: eur(),
        reactivated,
    }
}

#[tokio::test]
async fn an_active_contract_is_renewed_with_a_new_term() {
    let manager = as_role(Role::Manager);
    expect_events(
        active(),
        at(
            manager.clone(),
            "2026-01-15",
            renew("2027-02-28", "13000.00"),
        ),
        vec![renewed(2, END, "2027-02-28", false)],
    )
    .await;
    expect_events(
        with(active(), renewed(2, END, "2027-02-28", false)),
        at(manager, "2027-01-15", renew("2028-02-29", "13000.00")),
        vec![renewed(3, "2027-02-28", "2028-02-29", false)],
    )
    .await;
}

#[tokio::test]
async fn an_expired_contract_is_renewed_within_30_days_after_its_end() {
    let last_day = days_after(END, 30);
    expect_events(
        with(active(), expired()),
        at(
            as_role(Role::TenantAdmin),
            &last_day,
            renew("2027-02-28", "13000.00"),
        ),
        vec![renewed(2, END, "2027-02-28", true)],
    )
    .await;
    expect_err(
        with(active(), expired()),
        at(
            as_role(Role::TenantAdmin),
            &days_after(END, 31),
            renew("2027-02-28", "13000.00"),
        ),
        rule(RuleCode::RenewalWindowClosed),
    )
    .await;
    let mut contract = Contract::default();
    for event in with(
        with(active(), expired()),
        renewed(2, END, "2027-02-28", true),
    ) {
        cqrs_es::Aggregate::apply(&mut contract, event);
    }
    assert_eq!(contract.status(), Some(ContractStatus::Active));
}

#[tokio::test]
async fn only_active_or_recently_expired_contracts_are_renewed() {
    for history in [
        vec![drafted()],
        approved_history(),
        with(active(), terminated()),
    ] {
        expect_err(
            history,
            by(as_role(Role::Manager), renew("2027-02-28", "1")),
            rule(RuleCode::ContractNotRenewable),
        )
        .await;
    }
}

#[tokio::test]
async fn a_renewal_ends_later_and_in_the_future_at_a_valid_value() {
    let manager = as_role(Role::Manager);
    expect_err(
        active(),
        at(manager.clone(), "2026-01-15", renew(END, "1")),
        rule(RuleCode::RenewalNotLater),
    )
    .await;
    // Renewed 20 days after expiry, a new end 10 days after the old one is already past.
    expect_err(
        with(active(), expired()),
        at(
            manager.clone(),
            &days_after(END, 20),
            renew(&days_after(END, 10), "1"),
        ),
        rule(RuleCode::RenewalNotLater),
    )
    .await;
    expect_err(
        active(),
        at(manager, "2026-01-15", renew("2027-02-28", "-1")),
        invalid("new_value"),
    )
    .await;
}

#[tokio::test]
async fn renewal_is_for_managers_and_admins() {
    for actor in [operator(), as_role(Role::Viewer), partner_of(ACCOUNT)] {
        expect_err(
            active(),
            at(actor, "2026-01-15", renew("2027-02-28", "13000.00")),
            forbidden,
        )
        .await;
    }
}

// TerminateContract

fn terminate(reason: &str, effective_date: &str) -> C {
    C::TerminateContract {
        reason: reason.into(),
        effective_date: date(effective_date),
    }
}

#[tokio::test]
async fn terminate_records_reason_and_effective_date() {
    let effective = "2025-06-30";
    let expected = E::ContractTerminated {
        account_id: ACCOUNT,
        reason: text("breach"),
        effective_date: date(effective),
    };
    expect_events(
        active(),
        at(operator(), "2025-06-01", terminate(" breach ", effective)),
        vec![expected],
    )
    .await;
}

/// DOMAIN.md: "terminate (an active contract only)".
#[tokio::test]
async fn only_an_active_contract_terminates() {
    let negotiation = with(vec![drafted()], amended(2, "New terms"));
    for history in [vec![drafted()], negotiation, pending(), approved_history()] {
        expect_err(
            history,
            at(operator(), "2025-06-01", terminate("x", "2025-06-30")),
            rule(RuleCode::ContractNotActive),
        )
        .await;
    }
    for history in [
        with(active(), expired()),
        with(active(), terminated()),
        with(vec![drafted()], cancelled()),
    ] {
        expect_err(
            history,
            at(operator(), END, terminate("x", END)),
            rule(RuleCode::ContractEnded),
        )
        .await;
    }
}

#[tokio::test]
async fn termination_takes_effect_between_today_and_the_end_date() {
    for effective in ["2025-05-31", &days_after(END, 1)] {
        expect_err(
            active(),
            at(operator(), "2025-06-01", terminate("x", effective)),
            rule(RuleCode::EffectiveDateOutsideTerm),
        )
        .await;
    }
    expect_err(
        active(),
        at(operator(), "2025-06-01", terminate(" ", END)),
        invalid("reason"),
    )
    .await;
    expect_events(
        active(),
        at(operator(), "2025-06-01", terminate("breach", END)),
        vec![E::ContractTerminated {
            account_id: ACCOUNT,
            reason: text("breach"),
            effective_date: date(END),
        }],
    )
    .await;
}

// ExpireContract

#[tokio::test]
async fn an_active_contract_expires_on_its_end_date() {
    expect_events(
        active(),
        at(system(), END, C::ExpireContract {}),
        vec![expired()],
    )
    .await;
    expect_err(
        active(),
        at(system(), &days_before(END, 1), C::ExpireContract {}),
        rule(RuleCode::BeforeEndDate),
    )
    .await;
    // After a renewal the old end date no longer ends it.
    expect_err(
        with(active(), renewed(2, END, "2027-02-28", false)),
        at(system(), END, C::ExpireContract {}),
        rule(RuleCode::BeforeEndDate),
    )
    .await;
}

#[tokio::test]
async fn expiry_is_the_timers_and_changes_nothing_once_ended() {
    expect_err(
        active(),
        at(as_role(Role::TenantAdmin), END, C::ExpireContract {}),
        forbidden,
    )
    .await;
    for history in [with(active(), expired()), with(active(), terminated())] {
        expect_events(history, at(system(), END, C::ExpireContract {}), vec![]).await;
    }
    expect_err(
        approved_history(),
        at(system(), END, C::ExpireContract {}),
        rule(RuleCode::ContractNotActive),
    )
    .await;
}
