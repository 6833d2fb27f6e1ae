use serde_json::json;
use uuid::Uuid;

use crate::helpers::{open_account, Api, TestStack};

const ACCOUNT_FIELDS: &str = "id name legalName country billingEmail currency tier status \
    creditLimit apiQuotaPerMinute version openedBy updatedBy";

#[tokio::test]
async fn an_opened_and_changed_account_reads_back_through_graphql() {
    let stack = TestStack::new().await;
    let tenant = stack.create_tenant("acme").await;
    let server = stack.spawn(&["serve"]).await;
    let api = Api::new(&server);
    let token = api.login(&tenant).await;
    let id = Uuid::new_v4();

    assert_eq!(api.ok(&token, id, open_account("Globex")).await, 1);
    api.ok(
        &token,
        id,
        json!({"type": "SetCreditLimit", "amount": "25000.50"}),
    )
    .await;
    api.ok(
        &token,
        id,
        json!({"type": "ChangeTier", "tier": "Enterprise"}),
    )
    .await;
    let version = api
        .ok(
            &token,
            id,
            json!({"type": "UpdateAccountDetails", "name": "Globex Europe"}),
        )
        .await;
    assert_eq!(version, 4);

    let query = format!(r#"{{ account(id: "{id}") {{ {ACCOUNT_FIELDS} }} }}"#);
    let reply = api.graphql(&token, &query, Some((id, version))).await;
    let account = &reply["data"]["account"];
    assert_eq!(account["name"], "Globex Europe", "{reply}");
    assert_eq!(account["legalName"], "Globex GmbH");
    assert_eq!(account["tier"], "ENTERPRISE");
    assert_eq!(account["status"], "PROSPECT");
    assert_eq!(account["creditLimit"], "25000.50");
    assert_eq!(account["currency"], "EUR");
    assert_eq!(account["version"], 4);
    let admin_user: Value = stack_admin_user(&stack).await;
    assert_eq!(account["openedBy"], admin_user);
    assert_eq!(account["updatedBy"], admin_user);

    let list = api
        .graphql(
            &token,
            "{ accounts(first: 10) { totalCount edges { node { id name } } } }",
            None,
        )
        .await;
    assert_eq!(list["data"]["accounts"]["totalCount"], 1, "{list}");
    assert_eq!(
        list["data"]["accounts"]["edges"][0]["node"]["id"],
        json!(id.to_string())
    );
}

#[tokio::test]
async fn events_carry_tenant_actor_and_request_ids_in_their_metadata() {
    let stack = TestStack::new().await;
    let tenant = stack.create_tenant("meta").await;
    let server = stack.spawn(&["serve"]).await;
    let api = Api::new(&server);
    let token = api.login(&tenant).await;
    let id = Uuid::new_v4();
    let correlation = Uuid::new_v4();
    let response = api
        .command(&token, "accounts", id)
        .header("X-Correlation-Id", correlation.to_string())
        .header("User-Agent", "crm-sync/2.1")
        .json(&open_account("Initech"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["etag"], "\"1\"");

    let (tenant_id, metadata): (Uuid, Value) =
        sqlx::query_as("select tenant_id, metadata::jsonb from events where aggregate_id = $1")
            .bind(id.to_string())
            .fetch_one(&stack.db)
            .await
            .unwrap();
    assert_eq!(tenant_id, tenant.id);
    assert_eq!(metadata["tenant_id"], json!(tenant.id.to_string()));
    assert_eq!(metadata["user_id"], stack_admin_user(&stack).await);
    assert_eq!(metadata["correlation_id"], json!(correlation.to_string()));
    assert_eq!(metadata["client"], "crm-sync/2.1");
    assert!(metadata["request_id"]
        .as_str()
        .unwrap()
        .parse::<Uuid>()
        .is_ok());
    assert_eq!(metadata["causation_id"], metadata["request_id"]);
}

#[tokio::test]
async fn concurrent_writers_without_if_match_are_retried_and_all_land() {
    let stack = TestStack::new().await;
    let tenant = stack.create_tenant("race").await;
    let server = stack.spawn(&["serve"]).await;
    let api = Api::new(&server);
    let token = api.login(&tenant).await;
    let id = Uuid::new_v4();
    api.ok(&token, id, open_account("Umbrella")).await;
    let writes = (0..16).map(|n| {
        api.ok(
            &token,
            id,
            json!({"type": "SetApiQuota", "requests_per_minute": n + 1}),
        )
    });
    let mut versions = futures::future::join_all(writes).await;
    versions.sort();
    assert_eq!(versions, (2..=17).collect::<Vec<u64>>());
}

async fn stack_admin_user(stack: &TestStack) -> Value {
    let user_id: Uuid = sqlx::query_scalar("select user_id from user_credentials")
        .fetch_one(&stack.db)
        .await
        .unwrap();
    json!(user_id.to_string())
}

use serde_json::Value;
