//! Approval thresholds and discounts are tenant configuration, set with `b2b tenant set-policy`.
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{open_account, Api, TestStack};

fn write_policy(policy: &Value) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("b2b-policy-{}.json", Uuid::new_v4()));
    std::fs::write(&path, policy.to_string()).unwrap();
    path
}

#[tokio::test]
async fn a_raised_threshold_lets_a_large_quote_through_without_approval() {
    let stack = TestStack::new().await;
    let tenant = stack.create_tenant("lenient").await;
    let (ok, stdout, stderr) = stack.b2b(&["tenant", "policy", "--slug", "lenient"]).await;
    assert!(ok, "{stderr}");
    let mut policy: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(policy["currencies"]["EUR"]["approval_threshold"], "10000");
    policy["currencies"]["EUR"]["approval_threshold"] = json!("100000");
    let file = write_policy(&policy);
    let (ok, _, stderr) = stack
        .b2b(&[
            "tenant",
            "set-policy",
            "--slug",
            "lenient",
            "--file",
            file.to_str().unwrap(),
        ])
        .await;
    assert!(ok, "{stderr}");

    let server = stack.spawn(&["command-api"]).await;
    let api = Api::new(&server);
    let token = api.login(&tenant).await;
    let types = submit_big_quote(&stack, &api, &token).await;
    assert_eq!(
        types[types.len() - 2..],
        ["QuoteSubmitted", "QuoteApproved"]
    );
}

/// A 60,000 quote drafted, priced and submitted; the event types of its stream.
async fn submit_big_quote(stack: &TestStack, api: &Api, token: &str) -> Vec<String> {
    let account = Uuid::new_v4();
    api.ok(token, account, open_account("Bigco")).await;
    let quote = Uuid::new_v4();
    let valid_until = (chrono::Utc::now() + chrono::Duration::days(10)).to_rfc3339();
    api.ok_in(token, "quotes", quote, json!({"type": "DraftQuote", "account_id": account, "title": "Big", "valid_until": valid_until})).await;
    api.ok_in(
        token,
        "quotes",
        quote,
        json!({"type": "AddLineItem", "line_id": Uuid::new_v4(), "sku": "B",
        "description": "Big thing", "quantity": "1", "unit_price": "60000.00"}),
    )
    .await;
    api.ok_in(token, "quotes", quote, json!({"type": "SubmitQuote"}))
        .await;
    sqlx::query_scalar("select event_type from events where aggregate_id = $1 order by sequence")
        .bind(quote.to_string())
        .fetch_all(&stack.db)
        .await
        .unwrap()
}

/// A running process caches the policy; a change made meanwhile applies to its next command.
#[tokio::test]
async fn a_policy_changed_while_the_api_runs_applies_to_the_next_command() {
    let stack = TestStack::new().await;
    let tenant = stack.create_tenant("livepolicy").await;
    let server = stack.spawn(&["command-api"]).await;
    let api = Api::new(&server);
    let token = api.login(&tenant).await;
    let before = submit_big_quote(&stack, &api, &token).await;
    assert_eq!(before.last().map(String::as_str), Some("QuoteSubmitted"));

    let (_, stdout, _) = stack
        .b2b(&["tenant", "policy", "--slug", "livepolicy"])
        .await;
    let mut policy: Value = serde_json::from_str(&stdout).unwrap();
    policy["currencies"]["EUR"]["approval_threshold"] = json!("100000");
    let file = write_policy(&policy);
    let args = ["tenant", "set-policy", "--slug", "livepolicy", "--file"];
    let (ok, _, stderr) = stack
        .b2b(&[&args[..], &[file.to_str().unwrap()]].concat())
        .await;
    assert!(ok, "{stderr}");

    let after = submit_big_quote(&stack, &api, &token).await;
    assert_eq!(
        after[after.len() - 2..],
        ["QuoteSubmitted", "QuoteApproved"]
    );
}

#[tokio::test]
async fn a_policy_without_a_chain_for_large_amounts_is_refused() {
    let stack = TestStack::new().await;
    stack.create_tenant("strictpol").await;
    let (_, stdout, _) = stack
        .b2b(&["tenant", "policy", "--slug", "strictpol"])
        .await;
    let mut policy: Value = serde_json::from_str(&stdout).unwrap();
    policy["currencies"]["EUR"]["approval_bands"]
        .as_array_mut()
        .unwrap()
        .pop();
    let file = write_policy(&policy);
    let (ok, _, stderr) = stack
        .b2b(&[
            "tenant",
            "set-policy",
            "--slug",
            "strictpol",
            "--file",
            file.to_str().unwrap(),
        ])
        .await;
    assert!(!ok);
    assert!(stderr.contains("currencies.EUR.approval_bands"), "{stderr}");
    let stored: i64 = sqlx::query_scalar("select count(*) from tenant_policies")
        .fetch_one(&stack.db)
        .await
        .unwrap();
    assert_eq!(stored, 0);
}

/// A hostile probe once had a 9,999 XAU quote approved at once. Gold is no currency an account
/// is opened in, an ISO currency the tenant does not trade in is refused as a rule, and each
/// currency the tenant trades in has its own threshold.
#[tokio::test]
async fn accounts_take_only_the_tenants_currencies_and_thresholds_are_per_currency() {
    let stack = TestStack::new().await;
    let tenant = stack.create_tenant("currencies").await;
    let server = stack.spawn(&["command-api"]).await;
    let api = Api::new(&server);
    let token = api.login(&tenant).await;
    let before = crate::helpers::event_count(&stack.db).await;
    for (currency, status, kind) in [
        ("XAU", 400, "/problems/validation"),
        ("ZZZ", 400, "/problems/validation"),
        ("SEK", 422, "/problems/rule-violated/currency_not_allowed"),
    ] {
        let mut body = open_account("Goldbugs");
        body["currency"] = json!(currency);
        let response = api
            .command(&token, "accounts", Uuid::new_v4())
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), status, "{currency}");
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["type"], kind, "{currency}: {problem}");
    }
    assert_eq!(crate::helpers::event_count(&stack.db).await, before);

    // 9,999 in yen is far below the yen threshold (1,500,000): approved at once. 20,000 EUR
    // is above the euro one.
    for (currency, price, outcome) in [
        ("JPY", "9999", "QuoteApproved"),
        ("EUR", "20000.00", "QuoteSubmitted"),
    ] {
        let account = Uuid::new_v4();
        let mut body = open_account("Tokyo");
        body["currency"] = json!(currency);
        api.ok(&token, account, body).await;
        let quote = Uuid::new_v4();
        let valid_until = (chrono::Utc::now() + chrono::Duration::days(10)).to_rfc3339();
        api.ok_in(&token, "quotes", quote, json!({"type": "DraftQuote", "account_id": account, "title": "Q", "valid_until": valid_until})).await;
        api.ok_in(
            &token,
            "quotes",
            quote,
            json!({"type": "AddLineItem", "line_id": Uuid::new_v4(),
            "sku": "S", "description": "Thing", "quantity": "1", "unit_price": price}),
        )
        .await;
        api.ok_in(&token, "quotes", quote, json!({"type": "SubmitQuote"}))
            .await;
        let last: String = sqlx::query_scalar(
            "select event_type from events where aggregate_id = $1 order by sequence desc limit 1",
        )
        .bind(quote.to_string())
        .fetch_one(&stack.db)
        .await
        .unwrap();
        assert_eq!(last, outcome, "{currency} {price}");
    }
}
