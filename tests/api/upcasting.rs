//! Events stored under an older schema read as today's everywhere (one decode point with the
//! aggregates' upcasters); one stored at a version no upcaster knows is refused, not misread.
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{open_account, Api, TestStack};

/// Appends an event as a release of another schema wrote it, straight into the store.
async fn store_as_written_by_another_release(
    stack: &TestStack,
    quote: Uuid,
    sequence: i64,
    (event_type, version, body): (&str, &str, Value),
    tenant: Uuid,
) {
    let metadata = json!({"tenant_id": tenant.to_string(), "system_process": "older-release",
        "correlation_id": Uuid::new_v4().to_string(), "causation_id": Uuid::new_v4().to_string(),
        "request_id": Uuid::new_v4().to_string(), "recorded_at": chrono::Utc::now().to_rfc3339()});
    sqlx::query(
        "insert into events (aggregate_type, aggregate_id, sequence, event_type, event_version, \
                             payload, metadata, hash) \
         values ('Quote', $1, $2, $3, $4, $5::json, $6::json, ''::bytea)",
    )
    .bind(quote.to_string())
    .bind(sequence)
    .bind(event_type)
    .bind(version)
    .bind(json!({ event_type: body }).to_string())
    .bind(metadata.to_string())
    .execute(&stack.db)
    .await
    .unwrap();
}

/// `asOf` the quote now: its version.
fn as_of_now(quote: Uuid) -> String {
    format!(
        r#"{{ asOf(aggregateType: QUOTE, aggregateId: "{quote}", at: "{}") {{ version }} }}"#,
        chrono::Utc::now().to_rfc3339()
    )
}

/// A drafted quote with one line of 10 × 100.00 (2 % volume discount for a Standard account).
async fn drafted_quote(api: &Api, token: &str) -> Uuid {
    let account = Uuid::new_v4();
    api.ok(token, account, open_account("Oldco")).await;
    let quote = Uuid::new_v4();
    let valid_until = (chrono::Utc::now() + chrono::Duration::days(10)).to_rfc3339();
    api.ok_in(
        token,
        "quotes",
        quote,
        json!({"type": "DraftQuote", "account_id": account,
        "title": "Old", "valid_until": valid_until}),
    )
    .await;
    api.ok_in(
        token,
        "quotes",
        quote,
        json!({"type": "AddLineItem", "line_id": Uuid::new_v4(),
        "sku": "S", "description": "Thing", "quantity": "10", "unit_price": "100.00"}),
    )
    .await;
    quote
}

#[tokio::test]
async fn a_submission_stored_as_version_1_0_reads_with_the_gross_subtotal_everywhere() {
    let stack = TestStack::new().await;
    let tenant = stack.create_tenant("upcast").await;
    let server = stack.spawn(&["serve"]).await;
    let api = Api::new(&server);
    let token = api.login(&tenant).await;
    let quote = drafted_quote(&api, &token).await;

    // Version 1.0 stored the subtotal net of the line discounts: 980.00, not 1,000.00.
    let money = |amount: &str| json!({"amount": amount, "currency": "EUR"});
    let submitted = json!({"submission": 1, "requester": Uuid::new_v4(),
        "totals": {"subtotal": money("980.00"), "line_discounts": money("20.00"),
                   "quote_discount": money("0.00"), "total": money("980.00")},
        "discount_percent": "0", "needs_approval": false, "approval_chain": []});
    let events = [
        ("QuoteSubmitted", "1.0", submitted),
        ("QuoteApproved", "1.0", json!({"approval_id": null})),
    ];
    for (sequence, event) in (3..).zip(events) {
        store_as_written_by_another_release(&stack, quote, sequence, event, tenant.id).await;
    }

    // The command path folds the old events and decides on them.
    let sent = api
        .ok_in(&token, "quotes", quote, json!({"type": "SendQuote"}))
        .await;
    assert_eq!(sent, 5);
    let query =
        format!(r#"{{ quote(id: "{quote}") {{ status version subtotal lineDiscounts total }} }}"#);
    let answer = api.graphql(&token, &query, Some((quote, 5))).await;
    assert_eq!(
        answer["data"]["quote"],
        json!({"status": "SENT", "version": 5, "subtotal": "1000.00",
               "lineDiscounts": "20.00", "total": "980.00"})
    );
    let answer = api.graphql(&token, &as_of_now(quote), None).await;
    assert_eq!(answer["data"]["asOf"]["version"], 5, "{answer}");
}

#[tokio::test]
async fn an_event_of_a_version_no_upcaster_knows_is_refused_not_misread() {
    let stack = TestStack::new().await;
    let tenant = stack.create_tenant("future").await;
    let server = stack.spawn(&["serve"]).await;
    let api = Api::new(&server);
    let token = api.login(&tenant).await;
    let quote = drafted_quote(&api, &token).await;
    let from_the_future = json!({"line_id": Uuid::new_v4(), "sku": "F", "description": "Future",
        "quantity": "1", "unit": "Piece", "unit_price": "1.00", "volume_discount_percent": "0"});
    store_as_written_by_another_release(
        &stack,
        quote,
        3,
        ("LineItemAdded", "9.0", from_the_future),
        tenant.id,
    )
    .await;

    let response = api
        .command(&token, "quotes", quote)
        .json(&json!({"type": "SetQuoteDiscount", "percent": "1", "reason": "loyal"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let events: i64 = sqlx::query_scalar("select count(*) from events where aggregate_id = $1")
        .bind(quote.to_string())
        .fetch_one(&stack.db)
        .await
        .unwrap();
    assert_eq!(
        events, 3,
        "nothing appended on a stream that cannot be read"
    );
    let answer = api.graphql(&token, &as_of_now(quote), None).await;
    let message = answer["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(answer["data"]["asOf"].is_null(), "{answer}");
    assert_eq!(
        answer["errors"][0]["extensions"]["code"], "INTERNAL",
        "{answer}"
    );
    assert!(!message.contains("9.0"), "internal detail leaked: {answer}");
}

/// `LineItemAdded` 1.1 says what the quantity counts; a line stored as 1.0 counts pieces, in the
/// aggregate (which goes on deciding on it), the read model and GraphQL alike.
#[tokio::test]
async fn a_line_stored_before_units_counts_pieces_and_new_lines_say_their_unit() {
    let stack = TestStack::new().await;
    let tenant = stack.create_tenant("units").await;
    let server = stack.spawn(&["serve"]).await;
    let api = Api::new(&server);
    let token = api.login(&tenant).await;
    let quote = drafted_quote(&api, &token).await;
    let old_line = Uuid::new_v4();
    let before_units = json!({"line_id": old_line, "sku": "OLD", "description": "Old line",
        "quantity": "3", "unit_price": "2.00", "volume_discount_percent": "0"});
    let event = ("LineItemAdded", "1.0", before_units);
    store_as_written_by_another_release(&stack, quote, 3, event, tenant.id).await;
    let consulting = json!({"type": "AddLineItem", "line_id": Uuid::new_v4(), "sku": "C",
        "description": "Consulting", "quantity": "8", "unit": "Hour", "unit_price": "150.00"});
    assert_eq!(api.ok_in(&token, "quotes", quote, consulting).await, 4);
    // The aggregate knows the old line: changing it is decided, not refused as unknown.
    let change = json!({"type": "ChangeLineItem", "line_id": old_line, "quantity": "4"});
    assert_eq!(api.ok_in(&token, "quotes", quote, change).await, 5);

    let query =
        format!(r#"{{ quote(id: "{quote}") {{ version lines {{ sku quantity unit }} }} }}"#);
    let answer = api.graphql(&token, &query, Some((quote, 5))).await;
    assert_eq!(
        answer["data"]["quote"]["lines"],
        json!([
            {"sku": "S", "quantity": "10", "unit": "PIECE"},
            {"sku": "OLD", "quantity": "4", "unit": "PIECE"},
            {"sku": "C", "quantity": "8", "unit": "HOUR"},
        ])
    );
    let stored: String = sqlx::query_scalar(
        "select event_version from events where aggregate_id = $1 and sequence = 4",
    )
    .bind(quote.to_string())
    .fetch_one(&stack.db)
    .await
    .unwrap();
    assert_eq!(stored, "1.1");
}
