//! Events stored under an older schema read as today's everywhere (one decode point with the
//! aggregates' upcasters); one stored at a version no upcaster knows is refused, not misread.
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{eventually, open_account, Api, TestStack};

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
    let row = eventually("the quote projected as sent", || async {
        let answer = api.graphql(&token, &query, None).await;
        let row = answer["data"]["quote"].clone();
        (row["version"] == 5).then_some(row)
    })
    .await;
    assert_eq!(
        row,
        json!({"status": "SENT", "version": 5, "subtotal": "1000.00",
               "lineDiscounts": "20.00", "total": "980.00"})
    );
    let as_of = format!(
        r#"{{ asOf(aggregateType: QUOTE, aggregateId: "{quote}", at: "{}") {{ version }} }}"#,
        chrono::Utc::now().to_rfc3339()
    );
    let answer = api.graphql(&token, &as_of, None).await;
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
        "quantity": "1", "unit_price": "1.00", "volume_discount_percent": "0"});
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
    let as_of = format!(
        r#"{{ asOf(aggregateType: QUOTE, aggregateId: "{quote}", at: "{}") {{ version }} }}"#,
        chrono::Utc::now().to_rfc3339()
    );
    let answer = api.graphql(&token, &as_of, None).await;
    let message = answer["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(answer["data"]["asOf"].is_null(), "{answer}");
    assert_eq!(
        answer["errors"][0]["extensions"]["code"], "INTERNAL",
        "{answer}"
    );
    assert!(!message.contains("9.0"), "internal detail leaked: {answer}");
}
