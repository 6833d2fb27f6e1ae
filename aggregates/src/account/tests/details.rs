//! Details and commercial terms: name and address, tier, credit limit, API quota.
use super::*;

#[tokio::test]
async fn update_details_changes_only_given_fields() {
    let command = C::UpdateAccountDetails {
        name: Some("Globex EU".into()),
        legal_name: None,
        country: None,
        billing_email: Some("AP@globex.test".into()),
    };
    let expected = E::AccountDetailsUpdated {
        name: Some(text("Globex EU")),
        legal_name: None,
        country: None,
        billing_email: Some(Email::parse("e", "ap@globex.test").unwrap()),
    };
    expect_events(
        vec![opened()],
        by(as_role(Role::Operator), command),
        vec![expected],
    )
    .await;
}

#[tokio::test]
async fn update_details_needs_at_least_one_valid_field() {
    let empty = C::UpdateAccountDetails {
        name: None,
        legal_name: None,
        country: None,
        billing_email: None,
    };
    expect_err(vec![opened()], by(admin(), empty), |e| {
        matches!(e, DomainError::InvalidField { .. })
    })
    .await;
    let bad = C::UpdateAccountDetails {
        name: None,
        legal_name: None,
        country: Some("XXX".into()),
        billing_email: None,
    };
    expect_err(
        vec![opened()],
        by(admin(), bad),
        |e| matches!(e, DomainError::InvalidField { ref field, .. } if field == "country"),
    )
    .await;
}

#[tokio::test]
async fn viewers_cannot_update_details() {
    let command = C::UpdateAccountDetails {
        name: Some("x".into()),
        legal_name: None,
        country: None,
        billing_email: None,
    };
    expect_err(vec![opened()], by(as_role(Role::Viewer), command), |e| {
        matches!(e, DomainError::Forbidden(_))
    })
    .await;
}

#[tokio::test]
async fn change_tier_records_old_and_new_and_ignores_same_tier() {
    expect_events(
        vec![opened()],
        by(
            as_role(Role::Manager),
            C::ChangeTier {
                tier: Tier::Enterprise,
            },
        ),
        vec![E::AccountTierChanged {
            from: Tier::Gold,
            to: Tier::Enterprise,
        }],
    )
    .await;
    expect_events(
        vec![opened()],
        by(admin(), C::ChangeTier { tier: Tier::Gold }),
        vec![],
    )
    .await;
}

#[tokio::test]
async fn operators_cannot_change_commercial_terms() {
    for command in [
        C::ChangeTier {
            tier: Tier::Standard,
        },
        C::SetCreditLimit {
            amount: Decimal::ONE,
        },
        C::SetApiQuota {
            requests_per_minute: 5,
        },
        C::SuspendAccount { reason: "x".into() },
        C::CloseAccount { reason: "x".into() },
    ] {
        expect_err(
            vec![opened(), activated()],
            by(as_role(Role::Operator), command),
            |e| matches!(e, DomainError::Forbidden(_)),
        )
        .await;
    }
}

#[tokio::test]
async fn credit_limit_is_in_account_currency_and_validated() {
    let amount = Decimal::new(2_500_050, 2);
    expect_events(
        vec![opened()],
        by(admin(), C::SetCreditLimit { amount }),
        vec![E::CreditLimitSet {
            amount,
            currency: CurrencyCode::parse("c", "EUR").unwrap(),
        }],
    )
    .await;
    for bad in [Decimal::new(-1, 0), Decimal::new(10_001, 4)] {
        expect_err(
            vec![opened()],
            by(admin(), C::SetCreditLimit { amount: bad }),
            |e| matches!(e, DomainError::InvalidField { ref field, .. } if field == "amount"),
        )
        .await;
    }
    // A form any currency may have, but more decimals than the account's currency has.
    expect_err(
        vec![opened()],
        by(
            admin(),
            C::SetCreditLimit {
                amount: Decimal::new(1001, 3),
            },
        ),
        |e| {
            matches!(
                e,
                DomainError::RuleViolated {
                    code: RuleCode::TooManyDecimals,
                    ..
                }
            )
        },
    )
    .await;
}

#[tokio::test]
async fn api_quota_must_be_positive_and_bounded() {
    expect_events(
        vec![opened()],
        by(
            admin(),
            C::SetApiQuota {
                requests_per_minute: 120,
            },
        ),
        vec![E::ApiQuotaSet {
            requests_per_minute: 120,
        }],
    )
    .await;
    for bad in [0, 1_000_001] {
        expect_err(
            vec![opened()],
            by(
                admin(),
                C::SetApiQuota {
                    requests_per_minute: bad,
                },
            ),
            |e| matches!(e, DomainError::InvalidField { .. }),
        )
        .await;
    }
}
