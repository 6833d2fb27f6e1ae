//! Given/when/then for every Account command: each success and each rejection.
use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use cqrs_es::test::TestFramework;
use rust_decimal::Decimal;
use uuid::Uuid;

use super::{Account, AccountCommand as C, AccountEvent as E, AccountServices, Tier};
use crate::{
    Actor, Command, CountryCode, CurrencyCode, DomainError, Email, Role, RuleCode, TenantPolicy,
    Text,
};

type Given = TestFramework<Account>;

/// A tenant on the default policy.
struct Tenant;

#[async_trait]
impl AccountServices for Tenant {
    async fn policy(&self, _tenant_id: Uuid) -> Result<TenantPolicy, DomainError> {
        Ok(TenantPolicy::default())
    }
}

fn tenant() -> super::Services {
    Arc::new(Tenant)
}

fn as_role(role: Role) -> Actor {
    Actor::user(Uuid::from_u128(7), vec![role])
}

fn admin() -> Actor {
    as_role(Role::TenantAdmin)
}

fn by(actor: Actor, body: C) -> Command<C> {
    Command::new(Uuid::from_u128(42), actor, Utc::now(), body)
}

fn text(s: &str) -> Text {
    Text::parse("t", s, 1000).unwrap()
}

fn open_command() -> C {
    C::OpenAccount {
        name: " Globex ".into(),
        legal_name: "Globex Corporation".into(),
        country: "de".into(),
        billing_email: "Billing@Globex.Test".into(),
        currency: "eur".into(),
        tier: Tier::Gold,
    }
}

fn opened() -> E {
    E::AccountOpened {
        name: text("Globex"),
        legal_name: text("Globex Corporation"),
        country: CountryCode::parse("c", "DE").unwrap(),
        billing_email: Email::parse("e", "billing@globex.test").unwrap(),
        currency: CurrencyCode::parse("c", "EUR").unwrap(),
        tier: Tier::Gold,
    }
}

fn activated() -> E {
    E::AccountActivated {
        quote_id: Uuid::from_u128(1),
    }
}

fn contract() -> Uuid {
    Uuid::from_u128(99)
}

fn rule(code: RuleCode) -> impl Fn(DomainError) -> bool {
    move |e| matches!(e, DomainError::RuleViolated { code: c, .. } if c == code)
}

async fn expect_err(given: Vec<E>, command: Command<C>, check: impl Fn(DomainError) -> bool) {
    let result = Given::with(tenant())
        .given(given)
        .when_async(command)
        .await
        .inspect_result();
    match result {
        Err(e) => assert!(check(e.clone()), "unexpected error {e:?}"),
        Ok(events) => panic!("expected a rejection, got {events:?}"),
    }
}

async fn expect_events(given: Vec<E>, command: Command<C>, expected: Vec<E>) {
    Given::with(tenant())
        .given(given)
        .when_async(command)
        .await
        .then_expect_events(expected);
}

#[tokio::test]
async fn open_normalises_fields_and_starts_as_prospect() {
    expect_events(vec![], by(admin(), open_command()), vec![opened()]).await;
    let mut account = Account::default();
    cqrs_es::Aggregate::apply(&mut account, opened());
    assert_eq!(account.status(), Some(super::AccountStatus::Prospect));
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
        |e| e == DomainError::NotFound("account"),
    )
    .await;
}

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
    for bad in [Decimal::new(-1, 0), Decimal::new(1001, 3)] {
        expect_err(
            vec![opened()],
            by(admin(), C::SetCreditLimit { amount: bad }),
            |e| matches!(e, DomainError::InvalidField { ref field, .. } if field == "amount"),
        )
        .await;
    }
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

#[tokio::test]
async fn only_active_accounts_can_be_suspended() {
    expect_events(
        vec![opened(), activated()],
        by(
            admin(),
            C::SuspendAccount {
                reason: "unpaid invoices".into(),
            },
        ),
        vec![E::AccountSuspended {
            reason: text("unpaid invoices"),
        }],
    )
    .await;
    expect_err(
        vec![opened()],
        by(admin(), C::SuspendAccount { reason: "x".into() }),
        rule(RuleCode::AccountNotActive),
    )
    .await;
    expect_err(
        vec![opened(), activated()],
        by(admin(), C::SuspendAccount { reason: "".into() }),
        |e| matches!(e, DomainError::InvalidField { ref field, .. } if field == "reason"),
    )
    .await;
}

#[tokio::test]
async fn only_suspended_accounts_can_be_reinstated() {
    let suspended = E::AccountSuspended { reason: text("x") };
    expect_events(
        vec![opened(), activated(), suspended],
        by(admin(), C::ReinstateAccount {}),
        vec![E::AccountReinstated {}],
    )
    .await;
    expect_err(
        vec![opened(), activated()],
        by(admin(), C::ReinstateAccount {}),
        rule(RuleCode::AccountNotSuspended),
    )
    .await;
}

#[tokio::test]
async fn close_is_refused_while_a_contract_is_active() {
    let linked = E::ContractActivatedOnAccount {
        contract_id: contract(),
    };
    expect_err(
        vec![opened(), activated(), linked.clone()],
        by(
            admin(),
            C::CloseAccount {
                reason: "churned".into(),
            },
        ),
        rule(RuleCode::AccountHasActiveContracts),
    )
    .await;
    let ended = E::ContractEndedOnAccount {
        contract_id: contract(),
    };
    expect_events(
        vec![opened(), activated(), linked, ended],
        by(
            admin(),
            C::CloseAccount {
                reason: "churned".into(),
            },
        ),
        vec![E::AccountClosed {
            reason: text("churned"),
        }],
    )
    .await;
}

#[tokio::test]
async fn a_closed_account_accepts_no_more_changes() {
    let closed = E::AccountClosed { reason: text("x") };
    expect_err(
        vec![opened(), closed.clone()],
        by(
            admin(),
            C::ChangeTier {
                tier: Tier::Standard,
            },
        ),
        rule(RuleCode::AccountClosed),
    )
    .await;
    expect_err(
        vec![opened(), closed],
        by(
            admin(),
            C::CloseAccount {
                reason: "again".into(),
            },
        ),
        rule(RuleCode::AccountClosed),
    )
    .await;
}

#[tokio::test]
async fn first_accepted_quote_activates_a_prospect_once() {
    let quote_id = Uuid::from_u128(5);
    let system = Actor::system("quote-acceptance");
    expect_events(
        vec![opened()],
        by(system.clone(), C::ActivateAccount { quote_id }),
        vec![E::AccountActivated { quote_id }],
    )
    .await;
    expect_events(
        vec![opened(), activated()],
        by(system, C::ActivateAccount { quote_id }),
        vec![],
    )
    .await;
}

#[tokio::test]
async fn users_cannot_issue_system_commands() {
    for command in [
        C::ActivateAccount {
            quote_id: Uuid::nil(),
        },
        C::RecordContractActivated {
            contract_id: contract(),
        },
        C::RecordContractEnded {
            contract_id: contract(),
        },
    ] {
        expect_err(vec![opened()], by(admin(), command), |e| {
            matches!(e, DomainError::Forbidden(_))
        })
        .await;
    }
}

#[tokio::test]
async fn contract_links_are_idempotent() {
    let system = Actor::system("contract-lifecycle");
    let linked = E::ContractActivatedOnAccount {
        contract_id: contract(),
    };
    expect_events(
        vec![opened(), activated()],
        by(
            system.clone(),
            C::RecordContractActivated {
                contract_id: contract(),
            },
        ),
        vec![linked.clone()],
    )
    .await;
    expect_events(
        vec![opened(), activated(), linked],
        by(
            system.clone(),
            C::RecordContractActivated {
                contract_id: contract(),
            },
        ),
        vec![],
    )
    .await;
    expect_events(
        vec![opened(), activated()],
        by(
            system,
            C::RecordContractEnded {
                contract_id: contract(),
            },
        ),
        vec![],
    )
    .await;
}

#[test]
fn commands_parse_from_the_wire_format_and_reject_unknown_fields() {
    let ok: C = serde_json::from_str(r#"{"SetCreditLimit":{"amount":"1250.00"}}"#).unwrap();
    assert_eq!(
        ok,
        C::SetCreditLimit {
            amount: Decimal::new(125_000, 2)
        }
    );
    assert!(serde_json::from_str::<C>(r#"{"ChangeTier":{"tier":"Gold","x":1}}"#).is_err());
    assert!(serde_json::from_str::<C>(r#"{"Nope":{}}"#).is_err());
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
    let invalid_currency = |e: DomainError| matches!(e, DomainError::InvalidField { ref field, .. } if field == "currency");
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
