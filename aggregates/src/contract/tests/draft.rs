//! DraftContract and DraftContractFromQuote.
use super::*;

#[tokio::test]
async fn draft_normalises_fields_and_starts_at_version_one() {
    expect_events(vec![], by(operator(), draft_command()), vec![drafted()]).await;
    let mut contract = Contract::default();
    cqrs_es::Aggregate::apply(&mut contract, drafted());
    assert_eq!(contract.status(), Some(ContractStatus::Draft));
    assert_eq!(contract.version(), 1);
}

#[tokio::test]
async fn operators_managers_and_admins_draft_but_viewers_and_partners_never() {
    for role in [Role::Manager, Role::TenantAdmin] {
        expect_events(vec![], by(as_role(role), draft_command()), vec![drafted()]).await;
    }
    for actor in [as_role(Role::Viewer), partner_of(ACCOUNT)] {
        expect_err(vec![], by(actor, draft_command()), forbidden).await;
    }
}

/// The draft command with one field replaced.
fn draft_with(field: &str, value: &str) -> C {
    let C::DraftContract {
        account_id,
        mut title,
        value: mut amount,
        mut currency,
        start_date,
        mut end_date,
        mut terms,
    } = draft_command()
    else {
        unreachable!("draft_command builds DraftContract")
    };
    match field {
        "title" => title = value.into(),
        "value" => amount = money(value),
        "currency" => currency = value.into(),
        "end_date" => end_date = date(value),
        _ => terms = value.into(),
    }
    C::DraftContract {
        account_id,
        title,
        value: amount,
        currency,
        start_date,
        end_date,
        terms,
    }
}

#[tokio::test]
async fn draft_rejects_each_invalid_field() {
    let long_title = "x".repeat(201);
    let cases = [
        ("title", " "),
        ("title", long_title.as_str()),
        ("value", "-1"),
        ("value", "1.0001"),
        ("currency", "euro"),
        ("terms", ""),
    ];
    for (field, value) in cases {
        let field: &'static str = field;
        expect_err(
            vec![],
            by(operator(), draft_with(field, value)),
            invalid(field),
        )
        .await;
    }
    // Rules between two fields: the end against the start, the value against the currency.
    for (field, value, code) in [
        ("end_date", START, RuleCode::EndNotAfterStart),
        ("end_date", "2025-02-28", RuleCode::EndNotAfterStart),
        ("value", "1.001", RuleCode::TooManyDecimals),
    ] {
        expect_err(vec![], by(operator(), draft_with(field, value)), rule(code)).await;
    }
}

#[tokio::test]
async fn a_contract_may_be_worth_nothing_and_last_one_day() {
    let command = C::DraftContract {
        account_id: PROSPECT,
        title: "Pilot".into(),
        value: Decimal::ZERO,
        currency: "JPY".into(),
        start_date: date(START),
        end_date: date(&days_after(START, 1)),
        terms: "Free pilot.".into(),
    };
    let result = Given::with(Arc::new(Accounts::new()))
        .given_no_previous_events()
        .when_async(by(operator(), command))
        .await
        .inspect_result();
    assert!(result.is_ok(), "{result:?}");
}

#[tokio::test]
async fn draft_needs_an_account_of_the_tenant() {
    for account_id in [Uuid::from_u128(999), FOREIGN] {
        expect_err(vec![], by(operator(), draft_for(account_id)), |e| {
            *e == DomainError::NotFound("account")
        })
        .await;
    }
}

#[tokio::test]
async fn suspended_and_closed_accounts_get_no_new_contracts() {
    for (account_id, code) in [
        (SUSPENDED, RuleCode::AccountSuspended),
        (CLOSED, RuleCode::AccountClosed),
    ] {
        expect_err(vec![], by(operator(), draft_for(account_id)), rule(code)).await;
    }
}

/// The draft command for another account.
fn draft_for(account_id: Uuid) -> C {
    match draft_command() {
        C::DraftContract {
            title,
            value,
            currency,
            start_date,
            end_date,
            terms,
            ..
        } => C::DraftContract {
            account_id,
            title,
            value,
            currency,
            start_date,
            end_date,
            terms,
        },
        _ => unreachable!("draft_command builds DraftContract"),
    }
}

#[tokio::test]
async fn draft_twice_is_a_rule_violation() {
    expect_err(
        vec![drafted()],
        by(operator(), draft_command()),
        rule(RuleCode::ContractExists),
    )
    .await;
}

#[tokio::test]
async fn commands_on_an_undrafted_contract_are_not_found() {
    expect_err(vec![], by(operator(), C::SubmitContract {}), |e| {
        *e == DomainError::NotFound("contract")
    })
    .await;
}

#[tokio::test]
async fn a_failed_lookup_decides_nothing() {
    let services = Accounts {
        failing: true,
        ..Accounts::new()
    };
    expect_err_with(services, vec![], by(operator(), draft_command()), |e| {
        matches!(e, DomainError::LookupFailed(_))
    })
    .await;
}

// DraftContractFromQuote

#[tokio::test]
async fn the_acceptance_process_drafts_from_a_quote_copying_lines_and_total() {
    expect_events(
        vec![],
        by(system(), from_quote_command(vec![quote_line()])),
        vec![drafted_from_quote()],
    )
    .await;
}

#[tokio::test]
async fn users_cannot_draft_from_a_quote() {
    expect_err(
        vec![],
        by(
            as_role(Role::TenantAdmin),
            from_quote_command(vec![quote_line()]),
        ),
        forbidden,
    )
    .await;
}

#[tokio::test]
async fn draft_from_quote_validates_the_copied_lines() {
    let line = |f: fn(&mut QuoteLine)| {
        let mut line = quote_line();
        f(&mut line);
        vec![line]
    };
    let cases: [(&'static str, Vec<QuoteLine>); 7] = [
        ("lines", vec![]),
        ("lines[0].quantity", line(|l| l.quantity = Decimal::ZERO)),
        (
            "lines[0].unit_price",
            line(|l| l.unit_price = money("-0.01")),
        ),
        (
            "lines[0].volume_discount_percent",
            line(|l| l.volume_discount_percent = money("100.5")),
        ),
        ("lines[0].sku", line(|l| l.sku = " ".into())),
        // The quote's own limits, as the API document states them.
        ("lines[0].sku", line(|l| l.sku = "S".repeat(65))),
        (
            "lines[0].description",
            line(|l| l.description = "d".repeat(1001)),
        ),
    ];
    for (field, lines) in cases {
        expect_err(
            vec![],
            by(system(), from_quote_command(lines)),
            invalid(field),
        )
        .await;
    }
}

#[tokio::test]
async fn draft_from_quote_respects_the_account_status() {
    let C::DraftContractFromQuote {
        quote_id,
        title,
        lines,
        total,
        currency,
        start_date,
        end_date,
        terms,
        ..
    } = from_quote_command(vec![quote_line()])
    else {
        unreachable!("from_quote_command builds DraftContractFromQuote")
    };
    let command = C::DraftContractFromQuote {
        quote_id,
        account_id: SUSPENDED,
        title,
        lines,
        total,
        currency,
        start_date,
        end_date,
        terms,
    };
    expect_err(
        vec![],
        by(system(), command),
        rule(RuleCode::AccountSuspended),
    )
    .await;
}

#[tokio::test]
async fn the_same_accepted_quote_drafts_its_contract_once() {
    expect_events(
        vec![drafted_from_quote()],
        by(system(), from_quote_command(vec![quote_line()])),
        vec![],
    )
    .await;
    expect_err(
        vec![drafted()],
        by(system(), from_quote_command(vec![quote_line()])),
        rule(RuleCode::ContractExists),
    )
    .await;
}
