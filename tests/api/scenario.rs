//! The whole sales flow, end to end over HTTP and GraphQL against the real stack: users and
//! roles, a quote that needs two approval levels, acceptance by the Partner, the contract drafted
//! and the account activated by process managers, an SLA escalation and an expiry by timers, and
//! a redelivery of every event that changes nothing.
use std::time::Duration;

use futures::StreamExt;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable};
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{
    eventually, eventually_within, open_account, problem, Api, Tenant, TestStack,
};

const PASSWORD: &str = "scenario password 1";

struct Team {
    api: Api,
    tenant: Tenant,
    admin: String,
    admin_id: Uuid,
    account: Uuid,
}

impl Team {
    async fn member(
        &self,
        email: &str,
        roles: Value,
        account_id: Option<Uuid>,
        limit: Option<&str>,
    ) -> (Uuid, String) {
        let id = Uuid::new_v4();
        let register = json!({"type": "RegisterUser", "email": email, "display_name": email,
            "roles": roles, "account_id": account_id, "password": PASSWORD});
        self.api.ok_in(&self.admin, "users", id, register).await;
        if let Some(amount) = limit {
            let body = json!({"type": "SetApprovalLimit", "amount": amount, "currency": "EUR"});
            self.api.ok_in(&self.admin, "users", id, body).await;
        }
        let login = self.api.login_as(&self.tenant, email, PASSWORD).await;
        let token: Value = login.json().await.unwrap();
        (id, token["access_token"].as_str().unwrap().to_owned())
    }

    async fn query(&self, token: &str, query: &str) -> Value {
        let reply = self.api.graphql(token, query, None).await;
        assert!(reply.get("errors").is_none(), "{reply}");
        reply["data"].clone()
    }

    /// Drafts a quote with `lines` (quantity, unit price) and an optional quote discount.
    async fn quote(
        &self,
        token: &str,
        lines: &[(&str, &str)],
        discount: Option<&str>,
        days_valid: i64,
    ) -> Uuid {
        let id = Uuid::new_v4();
        let valid_until = (chrono::Utc::now() + chrono::Duration::days(days_valid)).to_rfc3339();
        let draft = json!({"type": "DraftQuote", "account_id": self.account, "title": "Rollout", "valid_until": valid_until});
        self.api.ok_in(token, "quotes", id, draft).await;
        for (n, (quantity, price)) in lines.iter().enumerate() {
            let line = json!({"type": "AddLineItem", "line_id": Uuid::new_v4(), "sku": format!("SKU-{n}"),
                "description": format!("Item {n}"), "quantity": quantity, "unit_price": price});
            self.api.ok_in(token, "quotes", id, line).await;
        }
        if let Some(percent) = discount {
            let body = json!({"type": "SetQuoteDiscount", "percent": percent, "reason": "Strategic account"});
            self.api.ok_in(token, "quotes", id, body).await;
        }
        self.api
            .ok_in(token, "quotes", id, json!({"type": "SubmitQuote"}))
            .await;
        id
    }

    async fn approval_of(&self, token: &str, quote: Uuid) -> Uuid {
        let query = format!(
            r#"{{ approvals(filter: {{subjectId: "{quote}"}}) {{ edges {{ node {{ id }} }} }} }}"#
        );
        eventually("the approval request", || async {
            let data = self.query(token, &query).await;
            data["approvals"]["edges"][0]["node"]["id"]
                .as_str()
                .map(|id| id.parse().unwrap())
        })
        .await
    }

    async fn quote_status(&self, token: &str, quote: Uuid, wanted: &str) -> Value {
        let query = format!(
            r#"{{ quote(id: "{quote}") {{ status total acceptedBy submittedBy lines {{ sku }} }} }}"#
        );
        eventually(&format!("quote {wanted}"), || async {
            let data = self.query(token, &query).await;
            (data["quote"]["status"] == wanted).then(|| data["quote"].clone())
        })
        .await
    }
}

async fn move_clock(stack: &TestStack, by: &str) {
    sqlx::query(&format!(
        "update test_clock set offset_by = offset_by + interval '{by}'"
    ))
    .execute(&stack.db)
    .await
    .unwrap();
}

#[tokio::test]
async fn a_quote_travels_from_draft_through_two_approvals_to_a_contract_and_an_active_account() {
    let stack = TestStack::new().await;
    let tenant = stack.create_tenant("globex").await;
    let server = stack.spawn(&["serve"]).await;
    let api = Api::new(&server);
    let admin = api.login(&tenant).await;
    let admin_id: Uuid = sqlx::query_scalar("select user_id from user_credentials")
        .fetch_one(&stack.db)
        .await
        .unwrap();
    let account = Uuid::new_v4();
    api.ok(&admin, account, open_account("Hooli")).await;
    let team = Team {
        api,
        tenant,
        admin,
        admin_id,
        account,
    };
    let body = json!({"type": "SetApprovalLimit", "amount": "1000000.00", "currency": "EUR"});
    team.api
        .ok_in(&team.admin, "users", team.admin_id, body)
        .await;
    let (manager_id, manager) = team
        .member(
            "manager@globex.test",
            json!(["Manager"]),
            None,
            Some("50000.00"),
        )
        .await;
    let (admin2_id, admin2) = team
        .member(
            "cfo@globex.test",
            json!(["TenantAdmin"]),
            None,
            Some("1000000.00"),
        )
        .await;
    let (operator_id, operator) = team
        .member("ops@globex.test", json!(["Operator"]), None, None)
        .await;
    let (partner_id, partner) = team
        .member("buyer@hooli.test", json!(["Partner"]), Some(account), None)
        .await;

    // 60,000 at list price; the Gold tier's volume breaks and a 10 % quote discount bring it to
    // 49,410.00: above the 10,000 threshold, inside the Manager + TenantAdmin band.
    let lines = [("100", "300.00"), ("50", "400.00"), ("10", "1000.00")];
    let quote = team.quote(&operator, &lines, Some("10"), 30).await;
    let approval = team.approval_of(&manager, quote).await;
    let pending = team
        .query(
            &manager,
            "{ approvals(filter: {pendingForMe: true}) { totalCount } }",
        )
        .await;
    assert_eq!(pending["approvals"]["totalCount"], 1);

    let own = team
        .api
        .command(&operator, "approvals", approval)
        .json(&json!({"type": "ApproveLevel"}))
        .send()
        .await
        .unwrap();
    let own = problem(own, StatusCode::FORBIDDEN).await;
    assert!(
        own["detail"]
            .as_str()
            .unwrap()
            .contains("the requester cannot approve their own request"),
        "{own}"
    );
    team.api
        .ok_in(
            &manager,
            "approvals",
            approval,
            json!({"type": "ApproveLevel", "comment": "fine"}),
        )
        .await;
    let twice = team
        .api
        .command(&manager, "approvals", approval)
        .json(&json!({"type": "ApproveLevel"}))
        .send()
        .await
        .unwrap();
    let twice = problem(twice, StatusCode::FORBIDDEN).await;
    assert!(
        twice["detail"]
            .as_str()
            .unwrap()
            .contains("one person approves one level"),
        "{twice}"
    );
    team.api
        .ok_in(
            &admin2,
            "approvals",
            approval,
            json!({"type": "ApproveLevel"}),
        )
        .await;

    let approved = team.quote_status(&operator, quote, "APPROVED").await;
    assert_eq!(approved["total"], "49410.00");
    assert_eq!(approved["submittedBy"], json!(operator_id.to_string()));
    assert_eq!(approved["lines"].as_array().unwrap().len(), 3);
    team.api
        .ok_in(&operator, "quotes", quote, json!({"type": "SendQuote"}))
        .await;
    team.api
        .ok_in(&partner, "quotes", quote, json!({"type": "AcceptQuote"}))
        .await;
    let accepted = team.quote_status(&partner, quote, "ACCEPTED").await;
    assert_eq!(accepted["acceptedBy"], json!(partner_id.to_string()));

    let levels = team
        .query(&admin2, &format!(r#"{{ approval(id: "{approval}") {{ status requesterId levels {{ level role approvedBy }} }} }}"#))
        .await;
    assert_eq!(levels["approval"]["status"], "APPROVED");
    assert_eq!(
        levels["approval"]["requesterId"],
        json!(operator_id.to_string())
    );
    let approvers: Vec<&Value> = levels["approval"]["levels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| &l["approvedBy"])
        .collect();
    assert_eq!(
        approvers,
        [
            &json!(manager_id.to_string()),
            &json!(admin2_id.to_string())
        ]
    );

    let contract_query = format!(
        r#"{{ contracts(filter: {{accountId: "{account}"}}) {{ totalCount edges {{ node {{ quoteId value status }} }} }} }}"#
    );
    let contracts = eventually("the contract drafted from the quote", || async {
        let data = team.query(&partner, &contract_query).await;
        (data["contracts"]["totalCount"] == 1).then(|| data["contracts"].clone())
    })
    .await;
    assert_eq!(
        contracts["edges"][0]["node"]["quoteId"],
        json!(quote.to_string())
    );
    assert_eq!(contracts["edges"][0]["node"]["value"], "49410.00");
    let account_query = format!(r#"{{ account(id: "{account}") {{ status }} }}"#);
    eventually("the account turning Active", || async {
        let data = team.query(&team.admin, &account_query).await;
        (data["account"]["status"] == "ACTIVE").then_some(())
    })
    .await;

    overdue_approval_escalates(&stack, &team, &operator).await;
    expired_quote_cannot_be_accepted(&stack, &team, &operator, &partner).await;
    redelivery_changes_nothing(&stack).await;
}

async fn overdue_approval_escalates(stack: &TestStack, team: &Team, operator: &str) {
    let quote = team.quote(operator, &[("1", "20000.00")], None, 30).await;
    let approval = team.approval_of(&team.admin, quote).await;
    move_clock(stack, "25 hours").await;
    let query = format!(
        r#"{{ approval(id: "{approval}") {{ levels {{ level role escalated breachedAt }} }} }}"#
    );
    let level = eventually("the overdue level to escalate", || async {
        let data = team.query(&team.admin, &query).await;
        let first = data["approval"]["levels"][0].clone();
        (first["escalated"] == true).then_some(first)
    })
    .await;
    assert_eq!(level["role"], "TENANT_ADMIN", "{level}");
    assert!(level["breachedAt"].is_string());
}

async fn expired_quote_cannot_be_accepted(
    stack: &TestStack,
    team: &Team,
    operator: &str,
    partner: &str,
) {
    let quote = team.quote(operator, &[("1", "100.00")], None, 2).await;
    team.quote_status(operator, quote, "APPROVED").await;
    team.api
        .ok_in(operator, "quotes", quote, json!({"type": "SendQuote"}))
        .await;
    move_clock(stack, "3 days").await;
    team.quote_status(operator, quote, "EXPIRED").await;
    let late = team
        .api
        .command(partner, "quotes", quote)
        .json(&json!({"type": "AcceptQuote"}))
        .send()
        .await
        .unwrap();
    let late = problem(late, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(
        late["type"], "/problems/rule-violated/quote_closed",
        "{late}"
    );
}

/// Publishes every stored event again, after forgetting what the process managers had seen, so
/// every follow-up command is issued a second time: none may append anything.
async fn redelivery_changes_nothing(stack: &TestStack) {
    let (before, seen_before) = quiet(stack).await;
    assert!(!seen_before.is_empty());
    sqlx::query("delete from projection_checkpoints where projection like 'process.%'")
        .execute(&stack.db)
        .await
        .unwrap();
    let events: Vec<event_store::StoredEvent> = sqlx::query_as(
        "select global_position, aggregate_type, aggregate_id, sequence, event_type, event_version, \
                payload, metadata, tenant_id, recorded_at from events order by global_position",
    )
    .fetch_all(&stack.db)
    .await
    .unwrap();
    publish_again(stack, &events).await;
    // Every process manager has handled every stream again up to where it was before; that is
    // every follow-up command of the scenario issued again, so give it more than the usual wait.
    let every_event = "the process managers to see every event again";
    eventually_within(every_event, Duration::from_secs(120), || async {
        (process_checkpoints(stack).await == seen_before).then_some(())
    })
    .await;
    let after: i64 = sqlx::query_scalar("select count(*) from events")
        .fetch_one(&stack.db)
        .await
        .unwrap();
    assert_eq!(
        after, before,
        "a redelivered event issued a command that appended events"
    );
    let (ok, status, stderr) = stack.b2b(&["projections", "status", "--json"]).await;
    assert!(ok, "{stderr}");
    let status: Value = serde_json::from_str(&status).unwrap();
    let parked: Vec<&Value> = status["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| &g["parked"])
        .collect();
    assert!(parked.iter().all(|p| **p == 0), "{status}");
}

/// Waits until the relay has published everything and neither the store nor the process
/// managers have moved for three polls in a row: under a loaded machine a follow-up command may
/// still be on its way long after the relay's backlog is empty. Returns the event count and
/// where the process managers stand.
async fn quiet(stack: &TestStack) -> (i64, Vec<(String, String, i64)>) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let mut last = None;
    let mut unchanged = 0;
    loop {
        let backlog = event_store::relay::backlog(&stack.db).await.unwrap();
        let count: i64 = sqlx::query_scalar("select count(*) from events")
            .fetch_one(&stack.db)
            .await
            .unwrap();
        let now = (count, process_checkpoints(stack).await);
        unchanged = if backlog == 0 && last.as_ref() == Some(&now) {
            unchanged + 1
        } else {
            0
        };
        if unchanged == 3 {
            return now;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for the store and the process managers to settle"
        );
        last = Some(now);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Where each process manager stands on each stream.
async fn process_checkpoints(stack: &TestStack) -> Vec<(String, String, i64)> {
    sqlx::query_as(
        "select projection, aggregate_id, last_sequence from projection_checkpoints \
         where projection like 'process.%' order by 1, 2",
    )
    .fetch_all(&stack.db)
    .await
    .unwrap()
}

async fn publish_again(stack: &TestStack, events: &[event_store::StoredEvent]) {
    let connection =
        lapin::Connection::connect(&stack.amqp_url, lapin::ConnectionProperties::default())
            .await
            .unwrap();
    let channel = connection.create_channel().await.unwrap();
    // With confirms each publish is known to be in the broker before the connection closes; a
    // connection dropped with frames still in its buffer would lose the tail of the batch.
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let exchange = format!("{}.events", stack.amqp_prefix);
    let publishes = events.iter().map(|event| {
        let mut headers = FieldTable::default();
        headers.insert(
            "aggregate_id".into(),
            AMQPValue::LongString(event.aggregate_id.as_str().into()),
        );
        let properties = lapin::BasicProperties::default().with_headers(headers);
        let body = serde_json::to_vec(event).unwrap();
        let channel = &channel;
        let exchange = exchange.as_str();
        async move {
            let confirmation = channel
                .basic_publish(
                    exchange.into(),
                    event.routing_key().into(),
                    BasicPublishOptions::default(),
                    &body,
                    properties,
                )
                .await
                .unwrap()
                .await
                .unwrap();
            assert!(confirmation.is_ack(), "the broker refused a message");
        }
    });
    futures::stream::iter(publishes)
        .buffered(16)
        .collect::<Vec<_>>()
        .await;
    connection.close(200, "published".into()).await.unwrap();
}
