//! Opening an account, and commands before it is opened.
use super::*;

#[tokio::test]
async fn open_normalises_fields_and_starts_as_prospect() {
    expect_events(vec![], by(admin(), open_command()), vec![opened()]).await;
    let mut account = Account::default();
    cqrs_es::Aggregate::apply(&mut account, opened());
    assert_eq!(account.status(), Some(AccountStatus::Prospect));
}

#[tokio::test]
async fn operators_may_open_but_viewers_and_partners_may_not() {
    expect_events(
        vec![],
        by(as_role(Role::Operator), open_command()),
        vec![opened()],
    )
    .await;
    for role in [Role::Viewer, Role::Partner] {
        expect_err(vec![], by(as_role(role), open_command()), |e| {
            matches!(e, DomainError::Forbidden(_))
        })
        .await;
    }
}

#[tokio::test]
async fn open_rejects_each_invalid_field() {
    let long = "x".repeat(201);
    let cases = [
        ("name", " "),
        ("legal_name", long.as_str()),
        ("country", "Germany"),
        ("billing_email", "nope"),
        ("currency", "euro"),
    ];
    for (field, value) in cases {
        expect_err(
            vec![],
            by(admin(), open_with(field, value)),
            |e| matches!(e, DomainError::InvalidField { field: ref f, .. } if f == field),
        )
        .await;
    }
}

/// The open command with one field replaced.
fn open_with(field: &str, value: &str) -> C {
    let C::OpenAccount {
        mut name,
        mut legal_name,
        mut country,
        mut billing_email,
        mut currency,
        tier,
    } = open_command()
    else {
        unreachable!("open_command builds OpenAccount")
    };
    let slot = match field {
        "name" => &mut name,
        "legal_name" => &mut legal_name,
        "country" => &mut country,
        "billing_email" => &mut billing_email,
        _ => &mut currency,
    };
    *slot = value.to_owned();
    C::OpenAccount {
        name,
        legal_name,
        country,
        billing_email,
        currency,
        tier,
    }
}

#[tokio::test]
async fn open_twice_is_a_rule_violation() {
    expect_err(
        vec![opened()],
        by(admin(), open_command()),
        rule(RuleCode::AccountExists),
    )
    .await;
}

#[tokio::test]
async fn commands_on_an_unopened_account_are_not_found() {
    expect_err(
        vec![],
        by(admin(), C::ChangeTier { tier: Tier::Gold }),
        |e| *e == DomainError::NotFound("account"),
    )
    .await;
}

/// Any three letters used to pass: gold (XAU), testing codes and made-up ones are not money a
/// quote is written in, and an ISO currency the tenant does not trade in is a rule of the tenant.
#[tokio::test]
async fn an_account_is_opened_only_in_a_real_currency_the_tenant_trades_in() {
    let opening = |currency: &str| C::OpenAccount {
        name: "Globex".into(),
        legal_name: "Globex Corporation".into(),
        country: "DE".into(),
        billing_email: "billing@globex.test".into(),
        currency: currency.into(),
        tier: Tier::Gold,
    };
    let invalid_currency = invalid("currency");
    for code in ["XAU", "ZZZ", "XTS", "BOV", "EU", "EURO", ""] {
        expect_err(vec![], by(admin(), opening(code)), invalid_currency).await;
    }
    expect_err(
        vec![],
        by(admin(), opening("SEK")),
        rule(RuleCode::CurrencyNotAllowed),
    )
    .await;
    let mut in_yen = opened();
    if let E::AccountOpened { currency, .. } = &mut in_yen {
        *currency = CurrencyCode::parse("c", "JPY").unwrap();
    }
    expect_events(vec![], by(admin(), opening("jpy")), vec![in_yen]).await;
}
