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

/// Each policy change is an event of the tenant's `Tenant` stream saying who made it and when;
/// the table the rules read is that stream's projection; an auditor sees the changes in the
/// event history and the policy in force at any time through `asOf`.
#[tokio::test]
async fn each_policy_change_is_an_event_naming_who_made_it_and_the_rules_read_its_projection() {
    let stack = TestStack::new().await;
    let tenant = stack.create_tenant("polhistory").await;
    let (_, stdout, _) = stack
        .b2b(&["tenant", "policy", "--slug", "polhistory"])
        .await;
    let first: Value = serde_json::from_str(&stdout).unwrap();
    let mut second = first.clone();
    second["currencies"]["EUR"]["approval_threshold"] = json!("25000");
    for (policy, by) in [(&first, "alice"), (&second, "bob"), (&second, "carol")] {
        let file = write_policy(policy);
        let args = ["tenant", "set-policy", "--slug", "polhistory", "--by", by];
        let (ok, _, stderr) = stack
            .b2b(&[&args[..], &["--file", file.to_str().unwrap()]].concat())
            .await;
        assert!(ok, "{stderr}");
    }

    // Carol set the policy already in force: nothing to record.
    let stream: Vec<(i64, String, Value, Value)> = sqlx::query_as(
        "select sequence, event_type, (payload -> 'TenantPolicySet' -> 'policy')::jsonb, \
                metadata::jsonb from events \
          where aggregate_type = 'Tenant' and aggregate_id = $1 order by sequence",
    )
    .bind(tenant.id.to_string())
    .fetch_all(&stack.db)
    .await
    .unwrap();
    let changes: Vec<(i64, &str, &Value, &Value, &Value)> = stream
        .iter()
        .map(|(sequence, event_type, policy, metadata)| {
            let by = &metadata["client"];
            (
                *sequence,
                event_type.as_str(),
                policy,
                &metadata["system_process"],
                by,
            )
        })
        .collect();
    assert_eq!(
        changes,
        [
            (
                1,
                "TenantPolicySet",
                &first,
                &json!("tenant-set-policy"),
                &json!("b2b tenant set-policy, by alice")
            ),
            (
                2,
                "TenantPolicySet",
                &second,
                &json!("tenant-set-policy"),
                &json!("b2b tenant set-policy, by bob")
            ),
        ]
    );
    let (in_force, since): (Value, chrono::DateTime<chrono::Utc>) =
        sqlx::query_as("select policy, updated_at from tenant_policies where tenant_id = $1")
            .bind(tenant.id)
            .fetch_one(&stack.db)
            .await
            .unwrap();
    let last_recorded: chrono::DateTime<chrono::Utc> = sqlx::query_scalar(
        "select recorded_at from events where aggregate_type = 'Tenant' and sequence = 2",
    )
    .fetch_one(&stack.db)
    .await
    .unwrap();
    assert_eq!((&in_force, since), (&second, last_recorded));
    let (ok, stdout, stderr) = stack.b2b(&["audit", "verify"]).await;
    assert!(ok, "{stdout}{stderr}");

    let server = stack.spawn(&["serve"]).await;
    let api = Api::new(&server);
    let token = api.login(&tenant).await;
    let query = format!(
        r#"{{ eventHistory(aggregateType: TENANT, aggregateId: "{id}") {{
              edges {{ node {{ sequence eventType systemProcess client }} }} }}
            before: asOf(aggregateType: TENANT, aggregateId: "{id}", at: "{at}") {{ version state }} }}"#,
        id = tenant.id,
        at = (last_recorded - chrono::Duration::microseconds(1)).to_rfc3339(),
    );
    let answer = api.graphql(&token, &query, None).await;
    let nodes: Vec<&Value> = answer["data"]["eventHistory"]["edges"]
        .as_array()
        .unwrap_or_else(|| panic!("{answer}"))
        .iter()
        .map(|edge| &edge["node"])
        .collect();
    assert_eq!(nodes.len(), 2, "{answer}");
    assert_eq!(nodes[1]["client"], "b2b tenant set-policy, by bob");
    assert_eq!(nodes[1]["systemProcess"], "tenant-set-policy");
    let before = &answer["data"]["before"];
    assert_eq!(before["version"], 1, "{answer}");
    assert_eq!(before["state"]["policy"], first);
}

/// A policy set before its changes became events starts its tenant's stream when the
/// migration runs, so the stream alone tells the policy in force and the chain verifies.
#[tokio::test]
async fn a_policy_set_before_history_began_starts_the_tenants_stream() {
    let stack = TestStack::unmigrated().await;
    let mut before_history = sqlx::migrate::Migrator::new(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/migrations"
    )))
    .await
    .unwrap();
    before_history.migrations = before_history
        .migrations
        .iter()
        .filter(|migration| migration.version < 29)
        .cloned()
        .collect::<Vec<_>>()
        .into();
    before_history.run(&stack.db).await.unwrap();
    let tenant = Uuid::new_v4();
    let policy = json!({"currencies": {"EUR": {"approval_threshold": "5000",
        "approval_bands": [{"up_to": null, "levels": ["Manager"]}]}},
        "max_discount_without_approval": "10", "level_sla_hours": 24,
        "volume_discounts": {"standard": [], "gold": [], "enterprise": []}});
    sqlx::query("insert into tenants (id, slug, name) values ($1, 'old', 'Old')")
        .bind(tenant)
        .execute(&stack.db)
        .await
        .unwrap();
    sqlx::query("insert into tenant_policies (tenant_id, policy) values ($1, $2)")
        .bind(tenant)
        .bind(&policy)
        .execute(&stack.db)
        .await
        .unwrap();

    stack.migrate().await;

    let (sequence, stored, process): (i64, Value, String) = sqlx::query_as(
        "select sequence, (payload -> 'TenantPolicySet' -> 'policy')::jsonb, \
                metadata ->> 'system_process' \
           from events where aggregate_type = 'Tenant' and aggregate_id = $1",
    )
    .bind(tenant.to_string())
    .fetch_one(&stack.db)
    .await
    .unwrap();
    assert_eq!(
        (sequence, &stored, process.as_str()),
        (1, &policy, "migration-0029")
    );
    let (ok, stdout, stderr) = stack.b2b(&["audit", "verify"]).await;
    assert!(ok, "{stdout}{stderr}");
    let (ok, stdout, stderr) = stack.b2b(&["tenant", "policy", "--slug", "old"]).await;
    assert!(ok, "{stderr}");
    let shown: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(shown["currencies"], policy["currencies"]);
}
