//! AddLineItem, ChangeLineItem, RemoveLineItem and SetQuoteDiscount: draft-only editing.
use super::*;

fn add(n: u128, quantity: &str, unit_price: &str) -> C {
    C::AddLineItem {
        line_id: line_id(n),
        sku: format!(" SKU-{n} "),
        description: format!("Item {n}"),
        quantity: dec(quantity),
        unit: Unit::Piece,
        unit_price: dec(unit_price),
    }
}

fn change(quantity: Option<&str>, unit_price: Option<&str>, description: Option<&str>) -> C {
    C::ChangeLineItem {
        line_id: line_id(1),
        quantity: quantity.map(dec),
        unit_price: unit_price.map(dec),
        description: description.map(str::to_owned),
    }
}

fn discount(percent: &str) -> C {
    C::SetQuoteDiscount {
        percent: dec(percent),
        reason: "strategic customer".into(),
    }
}

/// A status where lines are frozen, with its events.
fn frozen_quotes() -> Vec<Vec<E>> {
    vec![pending(), approved(), rejected(), sent()]
}

#[tokio::test]
async fn add_line_applies_the_tiers_volume_discount_by_quantity_break() {
    for (quantity, percent) in [("9", "0"), ("10", "5"), ("50", "8"), ("100.5", "10")] {
        expect_events(
            vec![drafted()],
            by(operator(), add(1, quantity, "12.50")),
            vec![added(line(1, quantity, "12.50", percent))],
        )
        .await;
    }
}

#[tokio::test]
async fn add_line_uses_the_tier_snapshotted_at_draft() {
    // The account is Enterprise now, but the quote was drafted for a Gold account.
    let now_enterprise = fake(AccountStatus::Active, Tier::Enterprise);
    expect_events_with(
        now_enterprise,
        vec![drafted()],
        by(operator(), add(1, "10", "1.00")),
        vec![added(line(1, "10", "1.00", "5"))],
    )
    .await;
}

#[tokio::test]
async fn line_edits_are_for_staff_only() {
    let commands = [
        add(3, "1", "1.00"),
        change(Some("3"), None, None),
        C::RemoveLineItem {
            line_id: line_id(1),
        },
        discount("5"),
    ];
    for command in commands {
        for actor in [as_role(Role::Viewer), partner_of(account())] {
            expect_err(draft_with_lines(), by(actor, command.clone()), forbidden).await;
        }
    }
}

#[tokio::test]
async fn add_line_rejects_each_invalid_field() {
    let long_sku = "x".repeat(65);
    let cases = [
        ("quantity", add(1, "0", "1.00")),
        ("quantity", add(1, "-1", "1.00")),
        ("quantity", add(1, "1.0001", "1.00")),
        ("quantity", add(1, "1000000.001", "1.00")),
        ("unit_price", add(1, "1", "-0.01")),
        ("unit_price", add(1, "1", "1.0001")),
        ("unit_price", add(1, "1", "1000000000.01")),
        (
            "sku",
            C::AddLineItem {
                line_id: line_id(1),
                sku: long_sku,
                description: "d".into(),
                quantity: Decimal::ONE,
                unit: Unit::Piece,
                unit_price: Decimal::ONE,
            },
        ),
        (
            "description",
            C::AddLineItem {
                line_id: line_id(1),
                sku: "s".into(),
                description: " ".into(),
                quantity: Decimal::ONE,
                unit: Unit::Piece,
                unit_price: Decimal::ONE,
            },
        ),
    ];
    for (field, command) in cases {
        expect_err(vec![drafted()], by(operator(), command), invalid(field)).await;
    }
    // A price any currency may have, but not the quote's (EUR): rules against its state.
    for (command, code) in [
        (add(1, "1", "1.001"), RuleCode::TooManyDecimals),
        (add(1, "1", "10000000.01"), RuleCode::UnitPriceTooHigh),
    ] {
        expect_err(vec![drafted()], by(operator(), command), rule(code)).await;
    }
}

#[tokio::test]
async fn add_line_accepts_a_free_line_and_the_bounds() {
    expect_events(
        vec![drafted()],
        by(operator(), add(1, "1000000", "10000000.00")),
        vec![added(line(1, "1000000", "10000000.00", "10"))],
    )
    .await;
    expect_events(
        vec![drafted()],
        by(operator(), add(1, "0.001", "0")),
        vec![added(line(1, "0.001", "0", "0"))],
    )
    .await;
}

#[tokio::test]
async fn line_ids_are_unique_within_a_quote() {
    expect_err(
        draft_with_lines(),
        by(operator(), add(1, "1", "1.00")),
        rule(RuleCode::DuplicateLineId),
    )
    .await;
}

#[tokio::test]
async fn a_quote_has_at_most_200_lines() {
    let mut given = vec![drafted()];
    given.extend((0..200).map(|n| added(line(n, "1", "1.00", "0"))));
    expect_err(
        given,
        by(operator(), add(999, "1", "1.00")),
        rule(RuleCode::TooManyLines),
    )
    .await;
}

#[tokio::test]
async fn lines_and_discount_are_frozen_from_submission() {
    let commands = [
        add(3, "1", "1.00"),
        change(Some("3"), None, None),
        C::RemoveLineItem {
            line_id: line_id(1),
        },
        discount("5"),
    ];
    for given in frozen_quotes() {
        for command in commands.clone() {
            expect_err(
                given.clone(),
                by(operator(), command),
                rule(RuleCode::QuoteNotDraft),
            )
            .await;
        }
    }
}

#[tokio::test]
async fn change_quantity_reprices_the_volume_discount() {
    expect_events(
        draft_with_lines(),
        by(operator(), change(Some("50"), None, None)),
        vec![E::LineItemChanged {
            line_id: line_id(1),
            quantity: Some(dec("50")),
            unit_price: None,
            description: None,
            volume_discount_percent: dec("8"),
        }],
    )
    .await;
}

#[tokio::test]
async fn change_price_or_description_keeps_the_volume_discount() {
    let given = then(vec![drafted()], added(line(1, "10", "15.50", "5")));
    expect_events(
        given,
        by(
            operator(),
            change(None, Some("14.00"), Some("Item 1, blue")),
        ),
        vec![E::LineItemChanged {
            line_id: line_id(1),
            quantity: None,
            unit_price: Some(dec("14.00")),
            description: Some(text("Item 1, blue")),
            volume_discount_percent: dec("5"),
        }],
    )
    .await;
}

#[tokio::test]
async fn change_to_the_current_values_records_nothing() {
    expect_events(
        draft_with_lines(),
        by(
            operator(),
            change(Some("2"), Some("100.00"), Some("Item 1")),
        ),
        vec![],
    )
    .await;
}

#[tokio::test]
async fn change_needs_a_field_a_known_line_and_valid_values() {
    expect_err(
        draft_with_lines(),
        by(operator(), change(None, None, None)),
        invalid("body"),
    )
    .await;
    let unknown = C::ChangeLineItem {
        line_id: line_id(9),
        quantity: Some(Decimal::ONE),
        unit_price: None,
        description: None,
    };
    expect_err(
        draft_with_lines(),
        by(operator(), unknown),
        rule(RuleCode::UnknownLine),
    )
    .await;
    for (field, command) in [
        ("quantity", change(Some("0"), None, None)),
        ("unit_price", change(None, Some("-1"), None)),
        ("description", change(None, None, Some(""))),
    ] {
        expect_err(draft_with_lines(), by(operator(), command), invalid(field)).await;
    }
}

#[tokio::test]
async fn remove_line_needs_a_known_line() {
    let remove = |n| C::RemoveLineItem {
        line_id: line_id(n),
    };
    expect_events(
        draft_with_lines(),
        by(operator(), remove(2)),
        vec![E::LineItemRemoved {
            line_id: line_id(2),
        }],
    )
    .await;
    expect_err(
        draft_with_lines(),
        by(operator(), remove(9)),
        rule(RuleCode::UnknownLine),
    )
    .await;
    let removed = then(
        draft_with_lines(),
        E::LineItemRemoved {
            line_id: line_id(2),
        },
    );
    assert_eq!(replay::<Quote>(removed).lines(), &two_lines()[..1]);
}

#[tokio::test]
async fn replay_folds_line_changes() {
    let changed = then(
        draft_with_lines(),
        E::LineItemChanged {
            line_id: line_id(1),
            quantity: Some(dec("50")),
            unit_price: None,
            description: Some(text("Item 1, blue")),
            volume_discount_percent: dec("8"),
        },
    );
    let quote = replay::<Quote>(changed);
    let mut expected = line(1, "50", "100.00", "8");
    expected.description = text("Item 1, blue");
    assert_eq!(quote.lines()[0], expected);
    assert_eq!(quote.totals().unwrap().total.amount, dec("4747.25"));
}

#[tokio::test]
async fn set_discount_records_percent_and_reason() {
    expect_events(
        draft_with_lines(),
        by(as_role(Role::Manager), discount("12.5")),
        vec![E::QuoteDiscountSet {
            percent: dec("12.5"),
            reason: text("strategic customer"),
        }],
    )
    .await;
    expect_events(
        draft_with_lines(),
        by(operator(), discount("100")),
        vec![E::QuoteDiscountSet {
            percent: dec("100"),
            reason: text("strategic customer"),
        }],
    )
    .await;
}

#[tokio::test]
async fn set_discount_needs_a_percentage_and_a_reason() {
    for bad in ["-0.01", "100.01", "10.125"] {
        expect_err(
            draft_with_lines(),
            by(operator(), discount(bad)),
            invalid("percent"),
        )
        .await;
    }
    let no_reason = C::SetQuoteDiscount {
        percent: Decimal::TEN,
        reason: "  ".into(),
    };
    expect_err(
        draft_with_lines(),
        by(operator(), no_reason),
        invalid("reason"),
    )
    .await;
}
