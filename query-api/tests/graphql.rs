//! query-api against a real Postgres: a fresh, migrated database per test, read-model rows for
//! two tenants written as the superuser (which bypasses RLS), and the routes served by an actix
//! test app on a `b2b_api` pool, as the binary serves them.
//!
//! Needs the local stack (`deploy/local/stack.sh up`); `DATABASE_OWNER_URL` (a superuser)
//! defaults to the one `deploy/local/env.sh` exports.
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::{test, App};
use aggregates::Role;
use auth::{Claims, Identity, TokenKeys};
use query_api::{configure, QueryApi, TenantTx};
use serde_json::{json, Value};
use sqlx::PgPool;
use test_support::TestDatabase;
use uuid::Uuid;

mod support;

const SECRET: &[u8] = b"query-api-test-secret";
const ACCOUNT_PROJECTIONS: [&str; 2] = ["accounts", "account_activity"];

/// Tenant A's accounts as (name, status, tier, days since opening). Opening order differs
/// from name order so the two orderings can be told apart.
const TENANT_A: [(&str, &str, &str, i32); 5] = [
    ("Alpha", "Active", "Gold", 30),
    ("Bravo", "Prospect", "Standard", 10),
    ("Charlie", "Active", "Standard", 50),
    ("Delta", "Suspended", "Gold", 20),
    ("Echo", "Active", "Enterprise", 40),
];
const TENANT_B: [(&str, &str, &str, i32); 2] = [
    ("Alpine of B", "Active", "Gold", 5),
    ("Zulu of B", "Active", "Gold", 6),
];

// ---------------------------------------------------------------------------------- world --

struct Tenant {
    id: Uuid,
    slug: &'static str,
    /// Account ids by name.
    accounts: Vec<(String, Uuid)>,
}

impl Tenant {
    fn account(&self, name: &str) -> Uuid {
        self.accounts.iter().find(|(n, _)| n == name).unwrap().1
    }
}

struct World {
    database: TestDatabase,
    /// Superuser: seeds rows, bypassing RLS.
    owner: PgPool,
    /// The APIs' login (`b2b_api`), as the binary connects.
    app_pool: PgPool,
    identity: Identity,
    /// Short by default, so a never-reached version fails the test fast.
    await_timeout: Duration,
    a: Tenant,
    b: Tenant,
}

impl World {
    async fn new() -> Self {
        let support::Database {
            database,
            owner,
            app_pool,
        } = support::create_database("query_api").await;
        let a = seed_tenant(&owner, "tenant-a", &TENANT_A).await;
        let b = seed_tenant(&owner, "tenant-b", &TENANT_B).await;
        let identity = support::identity(&app_pool, SECRET);
        Self {
            database,
            owner,
            app_pool,
            identity,
            await_timeout: Duration::from_millis(300),
            a,
            b,
        }
    }

    fn with_await_timeout(mut self, await_timeout: Duration) -> Self {
        self.await_timeout = await_timeout;
        self
    }

    fn api(&self) -> QueryApi {
        let fed_by = |aggregate_type: &str| match aggregate_type {
            "Account" => ACCOUNT_PROJECTIONS.to_vec(),
            _ => Vec::new(),
        };
        QueryApi::new(self.app_pool.clone(), self.identity.clone(), fed_by)
            .with_await_timeout(self.await_timeout)
    }

    /// Sends one request to a test app built as the binary builds it. (A fresh app per call
    /// keeps the helper free of actix's unnameable service types; building one is cheap.)
    async fn send(&self, request: test::TestRequest) -> Reply {
        let api = self.api();
        let app = test::init_service(App::new().configure(move |cfg| configure(cfg, api))).await;
        let response = test::call_service(&app, request.to_request()).await;
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let bytes = test::read_body(response).await;
        Reply {
            status,
            content_type,
            text: String::from_utf8_lossy(&bytes).into_owned(),
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    }

    async fn post(
        &self,
        token: Option<&str>,
        headers: &[(&str, &str)],
        query: &str,
        vars: Value,
    ) -> Reply {
        let mut request = test::TestRequest::post()
            .uri("/graphql")
            .set_json(json!({ "query": query, "variables": vars }));
        if let Some(token) = token {
            request = request.insert_header(("Authorization", format!("Bearer {token}")));
        }
        for header in headers {
            request = request.insert_header(*header);
        }
        self.send(request).await
    }

    /// `PAGE` as a user of tenant A.
    async fn page(&self, vars: Value) -> Reply {
        let reply = self
            .post(Some(&self.token(&self.a).await), &[], PAGE, vars)
            .await;
        assert_eq!(reply.status, StatusCode::OK);
        reply
    }

    async fn token(&self, tenant: &Tenant) -> String {
        self.token_as(tenant, Role::Viewer, None).await
    }

    /// A session of the one user of `tenant` with this role and account.
    async fn token_as(&self, tenant: &Tenant, role: Role, account_id: Option<Uuid>) -> String {
        let name = format!("{}/{role:?}/{account_id:?}", tenant.slug);
        let user = Uuid::new_v5(&Uuid::NAMESPACE_OID, name.as_bytes());
        let email = match account_id {
            None => format!("{role:?}@{}.test", tenant.slug).to_lowercase(),
            Some(account) => format!("{role:?}-{account}@{}.test", tenant.slug).to_lowercase(),
        };
        support::sign_in_as(
            &self.owner,
            &self.identity,
            (tenant.id, tenant.slug),
            (user, &email),
            &[role],
            account_id,
        )
        .await
    }

    /// One stored event for the stream and the checkpoint each projection has reached.
    async fn stream_with_checkpoints(&self, tenant: &Tenant, id: Uuid, reached: &[(&str, i64)]) {
        sqlx::query(
            "insert into events (aggregate_type, aggregate_id, sequence, event_type, \
             event_version, payload, metadata) values ('Account', $1, 1, 'AccountOpened', '1.0', \
             '{}', json_build_object('tenant_id', $2::text))",
        )
        .bind(id.to_string())
        .bind(tenant.id)
        .execute(&self.owner)
        .await
        .unwrap();
        for (projection, sequence) in reached {
            self.set_checkpoint(projection, id, *sequence).await;
        }
    }

    async fn set_checkpoint(&self, projection: &str, id: Uuid, sequence: i64) {
        sqlx::query(
            "insert into projection_checkpoints (projection, aggregate_type, aggregate_id, \
             last_sequence) values ($1, 'Account', $2, $3) \
             on conflict (projection, aggregate_type, aggregate_id) \
             do update set last_sequence = excluded.last_sequence",
        )
        .bind(projection)
        .bind(id.to_string())
        .bind(sequence)
        .execute(&self.owner)
        .await
        .unwrap();
    }

    async fn teardown(self) {
        support::drop_database(self.database, [self.app_pool, self.owner]).await;
    }
}

async fn seed_tenant(
    owner: &PgPool,
    slug: &'static str,
    rows: &[(&str, &str, &str, i32)],
) -> Tenant {
    let tenant_id = Uuid::new_v4();
    let mut accounts = Vec::new();
    for (name, status, tier, days_ago) in rows {
        let id = Uuid::new_v4();
        sqlx::query(
            "insert into read.accounts (id, tenant_id, name, legal_name, country, billing_email, \
             currency, tier, status, credit_limit, api_quota_per_minute, status_reason, \
             active_contracts, version, opened_at, opened_by, updated_at, updated_by) \
             values ($1, $2, $3, $3 || ' Ltd', 'DE', 'billing@example.test', 'EUR', $4, $5, \
             12500.5, 600, null, 1, 3, now() - make_interval(days => $6), $7, now(), $7)",
        )
        .bind(id)
        .bind(tenant_id)
        .bind(*name)
        .bind(*tier)
        .bind(*status)
        .bind(*days_ago)
        .bind(Uuid::new_v4())
        .execute(owner)
        .await
        .unwrap();
        accounts.push((name.to_string(), id));
    }
    Tenant {
        id: tenant_id,
        slug,
        accounts,
    }
}

// -------------------------------------------------------------------------------- requests --

struct Reply {
    status: StatusCode,
    content_type: String,
    text: String,
    body: Value,
}

impl Reply {
    fn error_code(&self) -> &str {
        self.body["errors"][0]["extensions"]["code"]
            .as_str()
            .unwrap_or("")
    }

    fn names(&self) -> Vec<String> {
        edges(&self.body["data"]["accounts"])
            .iter()
            .map(|e| e["node"]["name"].as_str().unwrap().to_owned())
            .collect()
    }
}

fn edges(connection: &Value) -> Vec<Value> {
    connection["edges"].as_array().cloned().unwrap_or_default()
}

const PAGE: &str = r#"
query Page($first: Int, $after: String, $filter: AccountFilter, $orderBy: AccountOrder) {
  accounts(first: $first, after: $after, filter: $filter, orderBy: $orderBy) {
    totalCount
    edges { cursor node { id name status tier } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}"#;

// ----------------------------------------------------------------------------------- tests --

#[actix_web::test]
async fn a_tenant_sees_only_its_own_accounts() {
    let world = World::new().await;

    let reply = world.page(json!({ "first": 100 })).await;

    assert_eq!(
        reply.names(),
        ["Alpha", "Bravo", "Charlie", "Delta", "Echo"]
    );
    assert_eq!(reply.body["data"]["accounts"]["totalCount"], 5);
    let other = world
        .post(Some(&world.token(&world.b).await), &[], PAGE, json!({}))
        .await;
    assert_eq!(other.names(), ["Alpine of B", "Zulu of B"]);
    world.teardown().await;
}

#[actix_web::test]
async fn a_partner_sees_only_its_own_account_in_the_list_and_by_id() {
    let world = World::new().await;
    let charlie = world.a.account("Charlie");
    let partner = world.token_as(&world.a, Role::Partner, Some(charlie)).await;
    let unlinked = world.token_as(&world.a, Role::Partner, None).await;
    let one = "query One($id: UUID!) { account(id: $id) { name } }";

    let list = world.post(Some(&partner), &[], PAGE, json!({})).await;
    let own = world
        .post(Some(&partner), &[], one, json!({ "id": charlie }))
        .await;
    let other = world
        .post(
            Some(&partner),
            &[],
            one,
            json!({ "id": world.a.account("Alpha") }),
        )
        .await;
    let nothing = world.post(Some(&unlinked), &[], PAGE, json!({})).await;

    assert_eq!(list.names(), ["Charlie"]);
    assert_eq!(list.body["data"]["accounts"]["totalCount"], 1);
    assert_eq!(own.body["data"]["account"]["name"], "Charlie");
    assert_eq!(other.body, json!({ "data": { "account": null } }));
    assert!(nothing.names().is_empty());
    assert_eq!(nothing.body["data"]["accounts"]["totalCount"], 0);
    world.teardown().await;
}

#[actix_web::test]
async fn account_by_id_is_null_for_another_tenants_id_and_full_for_ones_own() {
    let world = World::new().await;
    let query = "query One($id: UUID!) { account(id: $id) { id name legalName country \
        billingEmail currency tier status creditLimit apiQuotaPerMinute statusReason \
        activeContracts version openedAt openedBy updatedAt updatedBy } }";
    let token = world.token(&world.a).await;

    let foreign = world
        .post(
            Some(&token),
            &[],
            query,
            json!({ "id": world.b.account("Zulu of B") }),
        )
        .await;
    let own = world
        .post(
            Some(&token),
            &[],
            query,
            json!({ "id": world.a.account("Delta") }),
        )
        .await;

    assert_eq!(foreign.body, json!({ "data": { "account": null } }));
    let account = &own.body["data"]["account"];
    assert_eq!(account["name"], "Delta");
    assert_eq!(account["legalName"], "Delta Ltd");
    assert_eq!(account["status"], "SUSPENDED");
    assert_eq!(account["tier"], "GOLD");
    assert_eq!(
        account["creditLimit"], "12500.5",
        "a decimal string, never a float"
    );
    assert_eq!(account["apiQuotaPerMinute"], 600);
    assert_eq!(account["statusReason"], Value::Null);
    assert_eq!(account["version"], 3);
    world.teardown().await;
}

#[actix_web::test]
async fn pages_follow_each_other_until_an_empty_last_page() {
    let world = World::new().await;

    let first = world.page(json!({ "first": 2 })).await;
    let after = first.body["data"]["accounts"]["pageInfo"]["endCursor"].clone();
    let second = world.page(json!({ "first": 2, "after": after })).await;
    let after = second.body["data"]["accounts"]["pageInfo"]["endCursor"].clone();
    let last = world.page(json!({ "first": 2, "after": after })).await;
    let after = last.body["data"]["accounts"]["pageInfo"]["endCursor"].clone();
    let beyond = world.page(json!({ "first": 2, "after": after })).await;

    assert_eq!(first.names(), ["Alpha", "Bravo"]);
    assert_eq!(second.names(), ["Charlie", "Delta"]);
    assert_eq!(last.names(), ["Echo"]);
    assert!(beyond.names().is_empty());
    let info = |r: &Reply| r.body["data"]["accounts"]["pageInfo"].clone();
    assert_eq!(info(&first)["hasNextPage"], true);
    assert_eq!(info(&first)["hasPreviousPage"], false);
    assert_eq!(info(&second)["hasNextPage"], true);
    assert_eq!(info(&second)["hasPreviousPage"], true);
    assert_eq!(info(&last)["hasNextPage"], false);
    assert_eq!(
        info(&beyond),
        json!({ "hasNextPage": false, "hasPreviousPage": true, "startCursor": null, "endCursor": null })
    );
    for reply in [&first, &second, &last, &beyond] {
        assert_eq!(
            reply.body["data"]["accounts"]["totalCount"], 5,
            "the count ignores the page"
        );
    }
    world.teardown().await;
}

#[actix_web::test]
async fn a_page_exactly_as_large_as_the_list_has_no_next_page() {
    let world = World::new().await;

    let reply = world.page(json!({ "first": 5 })).await;

    assert_eq!(reply.names().len(), 5);
    let info = &reply.body["data"]["accounts"]["pageInfo"];
    assert_eq!(info["hasNextPage"], false);
    let edges = edges(&reply.body["data"]["accounts"]);
    assert_eq!(info["startCursor"], edges[0]["cursor"]);
    assert_eq!(info["endCursor"], edges[4]["cursor"]);
    world.teardown().await;
}

#[actix_web::test]
async fn first_is_capped_at_100_and_zero_or_negative_is_refused() {
    let world = World::new().await;

    let huge = world.page(json!({ "first": 100000 })).await;
    let zero = world.page(json!({ "first": 0 })).await;
    let negative = world.page(json!({ "first": -3 })).await;
    let garbage_cursor = world.page(json!({ "after": "bm9wZQ" })).await;

    assert_eq!(huge.names().len(), 5);
    for refused in [&zero, &negative, &garbage_cursor] {
        assert_eq!(refused.error_code(), "BAD_USER_INPUT", "{}", refused.body);
        assert_eq!(refused.body["data"], Value::Null);
    }
    assert!(zero.body["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("`first`"));
    world.teardown().await;
}

#[actix_web::test]
async fn filters_narrow_the_list_and_its_total_count() {
    let world = World::new().await;
    let filtered = |filter: Value| world.page(json!({ "filter": filter }));

    let active = filtered(json!({ "status": "ACTIVE" })).await;
    let gold = filtered(json!({ "tier": "GOLD" })).await;
    let name = filtered(json!({ "nameContains": "HA" })).await;
    let literal = filtered(json!({ "nameContains": "%" })).await;
    let combined =
        filtered(json!({ "status": "ACTIVE", "tier": "STANDARD", "nameContains": "ar" })).await;

    assert_eq!(active.names(), ["Alpha", "Charlie", "Echo"]);
    assert_eq!(active.body["data"]["accounts"]["totalCount"], 3);
    assert_eq!(
        gold.names(),
        ["Alpha", "Delta"],
        "tenant B's gold accounts stay out"
    );
    assert_eq!(name.names(), ["Alpha", "Charlie"]);
    assert!(
        literal.names().is_empty(),
        "`%` is matched literally, not as a wildcard"
    );
    assert_eq!(combined.names(), ["Charlie"]);
    assert_eq!(combined.body["data"]["accounts"]["totalCount"], 1);
    world.teardown().await;
}

#[actix_web::test]
async fn ordering_by_opening_date_or_name_in_either_direction_pages_consistently() {
    let world = World::new().await;
    let by = |field: &str, direction: &str| json!({ "field": field, "direction": direction });

    let newest = world
        .page(json!({ "first": 2, "orderBy": by("OPENED_AT", "DESC") }))
        .await;
    let cursor = newest.body["data"]["accounts"]["pageInfo"]["endCursor"].clone();
    let older = world
        .page(json!({ "first": 10, "after": cursor, "orderBy": by("OPENED_AT", "DESC") }))
        .await;
    let oldest = world
        .page(json!({ "orderBy": by("OPENED_AT", "ASC") }))
        .await;
    let z_to_a = world
        .page(json!({ "first": 3, "orderBy": by("NAME", "DESC") }))
        .await;
    let cursor = z_to_a.body["data"]["accounts"]["pageInfo"]["endCursor"].clone();
    let rest = world
        .page(json!({ "after": cursor, "orderBy": by("NAME", "DESC") }))
        .await;
    let mismatched = world
        .page(json!({ "after": cursor, "orderBy": by("OPENED_AT", "DESC") }))
        .await;

    assert_eq!(newest.names(), ["Bravo", "Delta"]);
    assert_eq!(older.names(), ["Alpha", "Echo", "Charlie"]);
    assert_eq!(
        oldest.names(),
        ["Charlie", "Echo", "Alpha", "Delta", "Bravo"]
    );
    assert_eq!(z_to_a.names(), ["Echo", "Delta", "Charlie"]);
    assert_eq!(rest.names(), ["Bravo", "Alpha"]);
    assert_eq!(mismatched.error_code(), "BAD_USER_INPUT");
    world.teardown().await;
}

#[actix_web::test]
async fn requests_without_a_valid_token_get_401_problem_json() {
    let world = World::new().await;
    let foreign_keys = TokenKeys::new(b"someone-else", chrono::Duration::minutes(5));
    let signed_out = world.token_as(&world.a, Role::TenantAdmin, None).await;
    let own_keys = TokenKeys::new(SECRET, chrono::Duration::minutes(5));
    let claims = own_keys.verify(&signed_out).unwrap();
    world.identity.sign_out(&claims).await.unwrap();
    let forged = foreign_keys.issue(claims.clone());
    // Well signed, but for a session that was never opened.
    let no_session = own_keys.issue(Claims {
        sid: Uuid::new_v4(),
        ..claims
    });

    let tokens = [
        None,
        Some("not-a-jwt"),
        Some(forged.as_str()),
        Some(signed_out.as_str()),
        Some(no_session.as_str()),
    ];
    for token in tokens {
        let reply = world.post(token, &[], "{ me { userId } }", json!({})).await;

        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{token:?}");
        assert_eq!(reply.content_type, "application/problem+json");
        assert_eq!(reply.body["status"], 401);
        assert_eq!(reply.body["title"], "Unauthorized");
        assert!(reply.body["type"].is_string());
        assert_eq!(
            reply.body["detail"],
            "the access token is missing, expired or invalid, or its session has ended"
        );
    }
    world.teardown().await;
}

#[actix_web::test]
async fn me_describes_the_caller_from_the_token() {
    let world = World::new().await;
    let query = "{ me { userId tenantId tenant email roles accountId } }";

    let reply = world
        .post(Some(&world.token(&world.a).await), &[], query, json!({}))
        .await;

    let me = &reply.body["data"]["me"];
    assert_eq!(me["tenantId"], world.a.id.to_string());
    assert_eq!(me["tenant"], "tenant-a");
    assert_eq!(me["email"], "viewer@tenant-a.test");
    assert_eq!(me["roles"], json!(["VIEWER"]));
    assert_eq!(me["accountId"], Value::Null);
    world.teardown().await;
}

#[actix_web::test]
async fn the_graphiql_page_is_served_on_get() {
    let world = World::new().await;

    let reply = world.send(test::TestRequest::get().uri("/graphql")).await;

    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.content_type.starts_with("text/html"));
    assert!(reply.text.to_lowercase().contains("graphiql"));
    world.teardown().await;
}

#[actix_web::test]
async fn an_await_version_already_reached_by_every_read_model_answers_at_once() {
    let world = World::new().await;
    let world = world.with_await_timeout(Duration::from_secs(5));
    let id = world.a.account("Alpha");
    world
        .stream_with_checkpoints(&world.a, id, &[("accounts", 3), ("account_activity", 4)])
        .await;
    let header = format!("{id}@3");

    let started = Instant::now();
    let reply = world
        .post(
            Some(&world.token(&world.a).await),
            &[("X-Await-Version", &header)],
            PAGE,
            json!({}),
        )
        .await;

    assert!(
        started.elapsed() < Duration::from_secs(1),
        "no waiting when already there"
    );
    assert!(reply.body.get("errors").is_none(), "{}", reply.body);
    assert_eq!(reply.names().len(), 5);
    world.teardown().await;
}

#[actix_web::test]
async fn an_await_version_waits_for_a_checkpoint_that_arrives_meanwhile() {
    let world = World::new()
        .await
        .with_await_timeout(Duration::from_secs(5));
    let id = world.a.account("Alpha");
    world
        .stream_with_checkpoints(&world.a, id, &[("accounts", 1), ("account_activity", 2)])
        .await;
    let header = format!("{id}@2");
    let headers = [("X-Await-Version", header.as_str())];
    let token = world.token(&world.a).await;
    let late_projector = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        world.set_checkpoint("accounts", id, 2).await;
    };

    let started = Instant::now();
    let (reply, ()) = tokio::join!(
        world.post(Some(&token), &headers, PAGE, json!({})),
        late_projector
    );

    assert!(started.elapsed() >= Duration::from_millis(300), "it waited");
    assert!(reply.body.get("errors").is_none(), "{}", reply.body);
    assert_eq!(reply.names().len(), 5);
    world.teardown().await;
}

#[actix_web::test]
async fn an_await_version_never_reached_by_one_read_model_is_a_stale_read() {
    let world = World::new().await;
    let id = world.a.account("Alpha");
    world
        .stream_with_checkpoints(&world.a, id, &[("accounts", 3), ("account_activity", 2)])
        .await;
    let header = format!("{id}@3");

    let started = Instant::now();
    let reply = world
        .post(
            Some(&world.token(&world.a).await),
            &[("X-Await-Version", &header)],
            PAGE,
            json!({}),
        )
        .await;

    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "it waited the whole timeout"
    );
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.error_code(), "STALE_READ");
    assert_eq!(reply.body["data"], Value::Null);
    world.teardown().await;
}

#[actix_web::test]
async fn an_await_version_on_an_unknown_or_foreign_id_is_a_stale_read() {
    let world = World::new().await;
    let foreign = world.b.account("Zulu of B");
    world
        .stream_with_checkpoints(
            &world.b,
            foreign,
            &[("accounts", 1), ("account_activity", 1)],
        )
        .await;
    let token = world.token(&world.a).await;

    for header in [format!("{foreign}@1"), format!("{}@1", Uuid::new_v4())] {
        let reply = world
            .post(
                Some(&token),
                &[("X-Await-Version", &header)],
                PAGE,
                json!({}),
            )
            .await;

        assert_eq!(reply.error_code(), "STALE_READ", "{header}");
        assert_eq!(reply.body["data"], Value::Null);
    }
    world.teardown().await;
}

#[actix_web::test]
async fn a_malformed_await_version_is_a_bad_request() {
    let world = World::new().await;

    let reply = world
        .post(
            Some(&world.token(&world.a).await),
            &[("X-Await-Version", "tomorrow")],
            PAGE,
            json!({}),
        )
        .await;

    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.error_code(), "BAD_REQUEST");
    assert_eq!(reply.body["data"], Value::Null);
    world.teardown().await;
}

#[actix_web::test]
async fn row_level_security_alone_keeps_other_tenants_rows_out_of_the_request_transaction() {
    let world = World::new().await;
    let count_all = "select count(*) from read.accounts";

    // The same mechanism the handler uses, with a query that forgets the tenant filter.
    let for_a = TenantTx::begin(&world.app_pool, world.a.id).await.unwrap();
    let seen_by_a: i64 = sqlx::query_scalar(count_all)
        .fetch_one(&mut *for_a.conn().await.unwrap())
        .await
        .unwrap();
    for_a.finish(false).await.unwrap();
    let for_b = TenantTx::begin(&world.app_pool, world.b.id).await.unwrap();
    let seen_by_b: i64 = sqlx::query_scalar(count_all)
        .fetch_one(&mut *for_b.conn().await.unwrap())
        .await
        .unwrap();
    for_b.finish(true).await.unwrap();
    let without_tenant: i64 = sqlx::query_scalar(count_all)
        .fetch_one(&world.app_pool)
        .await
        .unwrap();
    let really: i64 = sqlx::query_scalar(count_all)
        .fetch_one(&world.owner)
        .await
        .unwrap();

    assert_eq!((seen_by_a, seen_by_b), (5, 2));
    assert_eq!(
        without_tenant, 0,
        "no tenant set, nothing visible; the setting did not leak"
    );
    assert_eq!(really, 7);
    world.teardown().await;
}

#[actix_web::test]
async fn the_request_transaction_is_read_only() {
    let world = World::new().await;
    let tx = TenantTx::begin(&world.app_pool, world.a.id).await.unwrap();

    let write = sqlx::query("delete from read.accounts")
        .execute(&mut *tx.conn().await.unwrap())
        .await;

    assert!(write.is_err(), "a read-only transaction refuses writes");
    tx.finish(false).await.unwrap();
    world.teardown().await;
}

#[actix_web::test]
async fn overly_complex_deep_or_aliased_queries_are_refused() {
    let world = World::new().await;
    let token = world.token(&world.a).await;
    let heavy: String = (0..45)
        .map(|i| {
            format!(
                "a{i}: accounts {{ totalCount pageInfo {{ hasNextPage endCursor }} \
                 edges {{ cursor node {{ id name legalName country tier status }} }} }} "
            )
        })
        .collect();
    let aliases: String = (0..51).map(|i| format!("m{i}: me {{ userId }} ")).collect();
    let ofs = "ofType { ".repeat(14);
    let closing = "} ".repeat(14);
    let deep =
        format!("{{ __schema {{ types {{ fields {{ type {{ {ofs} name {closing} }} }} }} }} }}");

    let complex = world
        .post(Some(&token), &[], &format!("{{ {heavy} }}"), json!({}))
        .await;
    let too_deep = world.post(Some(&token), &[], &deep, json!({})).await;
    let aliased = world
        .post(Some(&token), &[], &format!("{{ {aliases} }}"), json!({}))
        .await;

    for reply in [&complex, &too_deep, &aliased] {
        assert_eq!(reply.body["data"], Value::Null, "{}", reply.body);
        assert!(reply.body["errors"][0]["message"].is_string());
    }
    assert!(complex.body["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("complex"));
    assert!(too_deep.body["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("nested"));
    assert_eq!(
        aliased.body["errors"][0]["message"],
        "the query uses 51 aliases; at most 50 are allowed"
    );
    world.teardown().await;
}

#[actix_web::test]
async fn an_internal_failure_is_reported_without_its_detail() {
    let world = World::new().await;
    sqlx::query("update read.accounts set tier = 'Platinum' where id = $1")
        .bind(world.a.account("Echo"))
        .execute(&world.owner)
        .await
        .unwrap();

    let reply = world.page(json!({})).await;

    assert_eq!(reply.error_code(), "INTERNAL");
    assert_eq!(reply.body["errors"][0]["message"], "internal error");
    assert!(!reply.text.contains("Platinum"), "{}", reply.text);
    world.teardown().await;
}
