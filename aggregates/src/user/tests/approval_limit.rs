//! SetApprovalLimit.
use super::*;

#[tokio::test]
async fn set_approval_limit_records_exact_money_once() {
    let manager = registered(vec![Role::Manager], None);
    let set = E::ApprovalLimitSet {
        amount: Decimal::new(2_500_000, 2),
        currency: CurrencyCode::parse("c", "EUR").unwrap(),
    };
    expect_events(
        vec![manager.clone()],
        by(admin(), limit("25000.00", "eur")),
        vec![set.clone()],
    )
    .await;
    expect_events(
        vec![manager, set],
        by(admin(), limit("25000", "EUR")),
        vec![],
    )
    .await;
}

#[tokio::test]
async fn set_approval_limit_rejects_bad_money() {
    let manager = registered(vec![Role::Manager], None);
    for (command, field) in [
        (limit("-1", "EUR"), "amount"),
        (limit("1.0001", "EUR"), "amount"),
        (limit("1", "euro"), "currency"),
    ] {
        expect_err(vec![manager.clone()], by(admin(), command), invalid(field)).await;
    }
    for command in [limit("1.001", "EUR"), limit("1.5", "JPY")] {
        expect_err(
            vec![manager.clone()],
            by(admin(), command),
            rule(RuleCode::TooManyDecimals),
        )
        .await;
    }
}

#[tokio::test]
async fn viewers_and_partners_have_no_approval_limit() {
    for user in [registered(vec![Role::Viewer], None), partner()] {
        expect_err(
            vec![user],
            by(admin(), limit("100", "EUR")),
            rule(RuleCode::NotAnApprover),
        )
        .await;
    }
}

#[tokio::test]
async fn only_tenant_admins_set_approval_limits_even_their_own() {
    let manager = registered(vec![Role::Manager], None);
    for actor in [as_role(Role::Manager), me(vec![Role::Manager])] {
        expect_err(
            vec![manager.clone()],
            by(actor, limit("100", "EUR")),
            forbidden,
        )
        .await;
    }
}
