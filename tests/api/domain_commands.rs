//! The user, quote and contract collections over HTTP, against the real stack: roles and
//! attribute rules hold however a command arrives, and sign-in follows the User stream.
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{open_account, problem, Api, Process, Tenant, TestStack};

const MEMBER_PASSWORD: &str = "member password 42";

struct World {
    stack: TestStack,
    _server: Process,
    api: Api,
    tenant: Tenant,
    admin: String,
    account: Uuid,
}

async fn world(slug: &str) -> World {
    let stack = TestStack::new().await;
    let tenant = stack.create_tenant(slug).await;
    let server = stack.spawn(&["command-api"]).await;
    let api = Api::new(&server);
    let admin = api.login(&tenant).await;
    let account = Uuid::new_v4();
    api.ok(&admin, account, open_account("Initrode")).await;
    World {
        stack,
        _server: server,
        api,
        tenant,
        admin,
        account,
    }
}

impl World {
    /// Registers a user with `roles` and a password, and signs them in.
    async fn member(&self, email: &str, roles: Value, account_id: Option<Uuid>) -> (Uuid, String) {
        let id = Uuid::new_v4();
        let body = json!({
            "type": "RegisterUser", "email": email, "display_name": email,
            "roles": roles, "account_id": account_id, "password": MEMBER_PASSWORD
        });
        self.api.ok_in(&self.admin, "users", id, body).await;
        let response = self
            .api
            .login_as(&self.tenant, email, MEMBER_PASSWORD)
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        let token: Value = response.json().await.unwrap();
        (id, token["access_token"].as_str().unwrap().to_owned())
    }

    async fn stream(&self, id: Uuid) -> Vec<String> {
        sqlx::query_scalar(
            "select event_type from events where aggregate_id = $1 order by sequence",
        )
        .bind(id.to_string())
        .fetch_all(&self.stack.db)
        .await
        .unwrap()
    }

    async fn draft_quote(&self, token: &str, price: &str) -> Uuid {
        let quote = Uuid::new_v4();
        let valid_until = (chrono::Utc::now() + chrono::Duration::days(30)).to_rfc3339();
        let draft = json!({"type": "DraftQuote", "account_id": self.account, "title": "Widgets", "valid_until": valid_until});
        self.api.ok_in(token, "quotes", quote, draft).await;
        let line = json!({"type": "AddLineItem", "line_id": Uuid::new_v4(), "sku": "W-1",
            "description": "Widget", "quantity": "10", "unit_price": price});
        self.api.ok_in(token, "quotes", quote, line).await;
        quote
    }
}

#[tokio::test]
async fn a_registered_user_signs_in_with_the_roles_of_their_stream_and_not_after_deactivation() {
    let w = world("people").await;
    let (manager, token) = w
        .member("Manager@People.test", json!(["Manager"]), None)
        .await;
    let me: Value = w
        .api
        .http
        .get(format!("{}/api/v1/auth/me", w.api.base_url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["roles"], json!(["Manager"]));
    assert_eq!(me["email"], "manager@people.test");
    assert_eq!(me["user_id"], json!(manager.to_string()));

    let again = json!({"type": "RegisterUser", "email": "MANAGER@people.test",
        "display_name": "Copy", "roles": ["Operator"], "password": MEMBER_PASSWORD});
    let duplicate = w
        .api
        .command(&w.admin, "users", Uuid::new_v4())
        .json(&again)
        .send()
        .await
        .unwrap();
    let body = problem(duplicate, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(body["type"], "/problems/rule-violated/email_in_use");

    w.api
        .ok_in(
            &w.admin,
            "users",
            manager,
            json!({"type": "DeactivateUser", "reason": "left"}),
        )
        .await;
    let refused = w
        .api
        .login_as(&w.tenant, "manager@people.test", MEMBER_PASSWORD)
        .await;
    problem(refused, StatusCode::UNAUTHORIZED).await;
    assert_eq!(
        w.stream(manager).await,
        ["UserRegistered", "UserDeactivated"]
    );
}

#[tokio::test]
async fn passwords_never_enter_the_event_log() {
    let w = world("secrets").await;
    let (id, token) = w
        .member("ops@secrets.test", json!(["Operator"]), None)
        .await;
    let change = json!({"type": "ChangePassword", "password": "a brand new passphrase"});
    w.api.ok_in(&token, "users", id, change).await;
    let ok = w
        .api
        .login_as(&w.tenant, "ops@secrets.test", "a brand new passphrase")
        .await;
    assert_eq!(ok.status(), StatusCode::OK);
    let leaked: i64 = sqlx::query_scalar(
        "select count(*) from events where payload::text like '%passphrase%' \
            or payload::text like '%member password%' or payload::text like '%argon2%'",
    )
    .fetch_one(&w.stack.db)
    .await
    .unwrap();
    assert_eq!(leaked, 0);
}

#[tokio::test]
async fn the_last_active_tenant_admin_cannot_be_deactivated() {
    let w = world("keepone").await;
    let admin_id: Uuid = sqlx::query_scalar("select user_id from user_credentials")
        .fetch_one(&w.stack.db)
        .await
        .unwrap();
    let response = w
        .api
        .command(&w.admin, "users", admin_id)
        .json(&json!({"type": "DeactivateUser", "reason": "oops"}))
        .send()
        .await
        .unwrap();
    let body = problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(body["type"], "/problems/rule-violated/last_tenant_admin");
}

#[tokio::test]
async fn a_small_quote_is_approved_on_submission_and_only_its_partner_may_accept_it() {
    let w = world("quotes").await;
    let (_, operator) = w.member("op@quotes.test", json!(["Operator"]), None).await;
    let (_, partner) = w
        .member("buyer@quotes.test", json!(["Partner"]), Some(w.account))
        .await;
    let other_account = Uuid::new_v4();
    w.api
        .ok(&w.admin, other_account, open_account("Elsewhere"))
        .await;
    let (_, stranger) = w
        .member(
            "buyer@elsewhere.test",
            json!(["Partner"]),
            Some(other_account),
        )
        .await;

    let quote = w.draft_quote(&operator, "99.90").await;
    let drafting = w
        .api
        .command(&partner, "quotes", Uuid::new_v4())
        .json(&json!({
            "type": "DraftQuote", "account_id": w.account, "title": "x",
            "valid_until": (chrono::Utc::now() + chrono::Duration::days(3)).to_rfc3339()
        }))
        .send()
        .await
        .unwrap();
    problem(drafting, StatusCode::FORBIDDEN).await;

    w.api
        .ok_in(&operator, "quotes", quote, json!({"type": "SubmitQuote"}))
        .await;
    w.api
        .ok_in(&operator, "quotes", quote, json!({"type": "SendQuote"}))
        .await;
    let foreign = w
        .api
        .command(&stranger, "quotes", quote)
        .json(&json!({"type": "AcceptQuote"}))
        .send()
        .await
        .unwrap();
    problem(foreign, StatusCode::FORBIDDEN).await;
    w.api
        .ok_in(&partner, "quotes", quote, json!({"type": "AcceptQuote"}))
        .await;
    assert_eq!(
        w.stream(quote).await,
        [
            "QuoteDrafted",
            "LineItemAdded",
            "QuoteSubmitted",
            "QuoteApproved",
            "QuoteSent",
            "QuoteAccepted"
        ]
    );
    let total: String = sqlx::query_scalar(
        "select payload -> 'QuoteSubmitted' -> 'totals' -> 'total' ->> 'amount' from events \
         where aggregate_id = $1 and event_type = 'QuoteSubmitted'",
    )
    .bind(quote.to_string())
    .fetch_one(&w.stack.db)
    .await
    .unwrap();
    // 10 × 99.90 with the Gold tier's 5 % volume discount at 10 units.
    assert_eq!(total, "949.05");
}

#[tokio::test]
async fn viewers_change_nothing() {
    let w = world("viewers").await;
    let (_, viewer) = w.member("eyes@viewers.test", json!(["Viewer"]), None).await;
    let valid_until = (chrono::Utc::now() + chrono::Duration::days(3)).to_rfc3339();
    let before: i64 = sqlx::query_scalar("select count(*) from events")
        .fetch_one(&w.stack.db)
        .await
        .unwrap();
    let attempts = [
        (
            "quotes",
            json!({"type": "DraftQuote", "account_id": w.account, "title": "x", "valid_until": valid_until}),
        ),
        (
            "accounts",
            json!({"type": "UpdateAccountDetails", "name": "Mine now"}),
        ),
        (
            "contracts",
            json!({"type": "DraftContract", "account_id": w.account, "title": "x", "value": "1.00",
            "currency": "EUR", "start_date": "2027-01-01", "end_date": "2027-02-01", "terms": "t"}),
        ),
        (
            "users",
            json!({"type": "RegisterUser", "email": "new@viewers.test", "display_name": "n", "roles": ["Viewer"]}),
        ),
    ];
    for (collection, body) in attempts {
        let id = if collection == "accounts" {
            w.account
        } else {
            Uuid::new_v4()
        };
        let denied = w
            .api
            .command(&viewer, collection, id)
            .json(&body)
            .send()
            .await
            .unwrap();
        problem(denied, StatusCode::FORBIDDEN).await;
    }
    let after: i64 = sqlx::query_scalar("select count(*) from events")
        .fetch_one(&w.stack.db)
        .await
        .unwrap();
    assert_eq!(after, before);
}

#[tokio::test]
async fn contracts_are_drafted_amended_as_new_versions_and_submitted() {
    let w = world("deals").await;
    let contract = Uuid::new_v4();
    let draft = json!({"type": "DraftContract", "account_id": w.account, "title": "Supply",
        "value": "120000.00", "currency": "EUR", "start_date": "2027-01-01",
        "end_date": "2027-12-31", "terms": "Net 30"});
    w.api.ok_in(&w.admin, "contracts", contract, draft).await;
    w.api
        .ok_in(
            &w.admin,
            "contracts",
            contract,
            json!({"type": "AmendContract", "terms": "Net 45"}),
        )
        .await;
    w.api
        .ok_in(
            &w.admin,
            "contracts",
            contract,
            json!({"type": "SubmitContract"}),
        )
        .await;
    let late = w
        .api
        .command(&w.admin, "contracts", contract)
        .json(&json!({"type": "AmendContract", "value": "1.00"}))
        .send()
        .await
        .unwrap();
    let late = problem(late, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(
        late["type"], "/problems/rule-violated/contract_not_amendable",
        "{late}"
    );
    assert_eq!(
        w.stream(contract).await,
        ["ContractDrafted", "ContractAmended", "ContractSubmitted"]
    );
    let missing_account = json!({"type": "DraftContract", "account_id": Uuid::new_v4(), "title": "x",
        "value": "1.00", "currency": "EUR", "start_date": "2027-01-01", "end_date": "2027-02-01", "terms": "t"});
    let response = w
        .api
        .command(&w.admin, "contracts", Uuid::new_v4())
        .json(&missing_account)
        .send()
        .await
        .unwrap();
    let missing = problem(response, StatusCode::NOT_FOUND).await;
    assert_eq!(missing["detail"], "no such account", "{missing}");
}

/// Under `B2B_CLOCK=adjustable` commands are decided at the clock the timers use: moving it
/// moves "now" for a quote's validity as it does for its expiry timer.
#[tokio::test]
async fn commands_are_decided_at_the_moved_test_clock() {
    let w = world("clock").await;
    let quote = w.draft_quote(&w.admin, "10.00").await;
    sqlx::query("update test_clock set offset_by = interval '31 days'")
        .execute(&w.stack.db)
        .await
        .unwrap();
    let before = w.stream(quote).await;
    // Valid for 30 days of real time, so already past at the moved clock.
    let submit = w
        .api
        .command(&w.admin, "quotes", quote)
        .json(&json!({"type": "SubmitQuote"}))
        .send()
        .await
        .unwrap();
    let refused = problem(submit, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(
        refused["type"], "/problems/rule-violated/quote_validity_passed",
        "{refused}"
    );
    assert_eq!(w.stream(quote).await, before, "a refusal changes nothing");

    // A validity that is in the future by the machine's clock is in the past by the moved one.
    let in_ten_days = (chrono::Utc::now() + chrono::Duration::days(10)).to_rfc3339();
    let draft = json!({"type": "DraftQuote", "account_id": w.account, "title": "Late",
        "valid_until": in_ten_days});
    let late = Uuid::new_v4();
    let response = w
        .api
        .command(&w.admin, "quotes", late)
        .json(&draft)
        .send()
        .await
        .unwrap();
    let refused = problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(
        refused["type"], "/problems/rule-violated/valid_until_passed",
        "{refused}"
    );
    assert!(w.stream(late).await.is_empty());
}
