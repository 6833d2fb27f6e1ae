//! `users`, `quotes`, `quote`, `approvals`, `approval`, `contracts` and `contract` against a
//! real Postgres: rows for two tenants seeded as the superuser (bypassing RLS), the routes
//! served by an actix test app on a `b2b_api` pool, as the binary serves them.
//! Needs the local stack (`deploy/local/stack.sh up`).
use actix_web::{test, App};
use aggregates::Role;
use auth::{Claims, Identity};
use query_api::{build_schema, configure, QueryApi, TenantTx};
use serde_json::{json, Value};
use sqlx::{Executor, PgPool};
use test_support::TestDatabase;
use uuid::Uuid;

mod support;

const SECRET: &[u8] = b"query-api-read-models-secret";

struct World {
    database: TestDatabase,
    owner: PgPool,
    app_pool: PgPool,
    identity: Identity,
    tenant_a: Uuid,
    tenant_b: Uuid,
    /// Tenant A's two accounts.
    acme: Uuid,
    globex: Uuid,
}

impl World {
    async fn new() -> Self {
        let support::Database {
            database,
            owner,
            app_pool,
        } = support::create_database("query_api_rm").await;
        let identity = support::identity(&app_pool, SECRET);
        Self {
            database,
            owner,
            app_pool,
            identity,
            tenant_a: Uuid::new_v4(),
            tenant_b: Uuid::new_v4(),
            acme: Uuid::new_v4(),
            globex: Uuid::new_v4(),
        }
    }

    async fn sql(&self, sql: &str) {
        self.owner.execute(sql).await.unwrap();
    }

    /// A session of `user` of `tenant`.
    async fn token(
        &self,
        tenant: Uuid,
        user: Uuid,
        roles: Vec<Role>,
        account: Option<Uuid>,
    ) -> String {
        support::sign_in_as(
            &self.owner,
            &self.identity,
            (tenant, &format!("t-{}", tenant.simple())),
            (user, &format!("{user}@example.test")),
            &roles,
            account,
        )
        .await
    }

    async fn viewer(&self) -> String {
        self.token(self.tenant_a, Uuid::new_v4(), vec![Role::Viewer], None)
            .await
    }

    async fn query(&self, token: &str, query: &str, variables: Value) -> Value {
        let api = QueryApi::new(self.app_pool.clone(), self.identity.clone(), |_: &str| {
            Vec::new()
        });
        let app = test::init_service(App::new().configure(move |cfg| configure(cfg, api))).await;
        let request = test::TestRequest::post()
            .uri("/graphql")
            .insert_header(("Authorization", format!("Bearer {token}")))
            .set_json(json!({ "query": query, "variables": variables }))
            .to_request();
        let body: Value = test::call_and_read_body_json(&app, request).await;
        body
    }

    async fn teardown(self) {
        support::drop_database(self.database, [self.app_pool, self.owner]).await;
    }

    /// A quote of tenant A (or B) with `total`, drafted `days_ago`, and one line per `lines`.
    async fn quote(&self, tenant: Uuid, account: Uuid, seed: QuoteSeed<'_>) -> Uuid {
        let id = Uuid::new_v4();
        sqlx::query(
            "insert into read.quotes (id, tenant_id, account_id, title, currency, tier, status, \
                 valid_until, subtotal, line_discounts, quote_discount, total, discount_percent, \
                 version, created_at, updated_at) \
             values ($1, $2, $3, $4, 'EUR', 'Gold', $5, now() + interval '30 days', $6, 0, 0, \
                 $6, 0, 2, now() - make_interval(days => $7), now())",
        )
        .bind(id)
        .bind(tenant)
        .bind(account)
        .bind(seed.title)
        .bind(seed.status)
        .bind(seed.total.parse::<rust_decimal::Decimal>().unwrap())
        .bind(seed.days_ago)
        .execute(&self.owner)
        .await
        .unwrap();
        id
    }
}

struct QuoteSeed<'a> {
    title: &'a str,
    status: &'a str,
    total: &'a str,
    days_ago: i32,
}

fn seed<'a>(title: &'a str, status: &'a str, total: &'a str, days_ago: i32) -> QuoteSeed<'a> {
    QuoteSeed {
        title,
        status,
        total,
        days_ago,
    }
}

/// Tenant A: five quotes over two accounts; tenant B: one.
async fn with_quotes(world: &World) -> Vec<Uuid> {
    let (a, acme, globex) = (world.tenant_a, world.acme, world.globex);
    let mut ids = Vec::new();
    for (account, s) in [
        (acme, seed("Q1", "Draft", "100.00", 50)),
        (acme, seed("Q2", "Sent", "2500.50", 40)),
        (globex, seed("Q3", "Sent", "999.99", 30)),
        (globex, seed("Q4", "Accepted", "10000.00", 20)),
        (acme, seed("Q5", "PendingApproval", "7.00", 10)),
    ] {
        ids.push(world.quote(a, account, s).await);
    }
    world
        .quote(
            world.tenant_b,
            Uuid::new_v4(),
            seed("B1", "Sent", "5.00", 5),
        )
        .await;
    ids
}

fn titles(body: &Value, list: &str) -> Vec<String> {
    body["data"][list]["edges"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|e| e["node"]["title"].as_str().unwrap().to_owned())
        .collect()
}

const QUOTES: &str = r#"
query Quotes($first: Int, $after: String, $filter: QuoteFilter, $orderBy: QuoteOrder) {
  quotes(first: $first, after: $after, filter: $filter, orderBy: $orderBy) {
    totalCount
    edges { cursor node { id title status total accountId } }
    pageInfo { hasNextPage hasPreviousPage endCursor }
  }
}"#;

#[actix_web::test]
async fn quotes_filter_by_status_and_account_and_count_only_the_callers_tenant() {
    let world = World::new().await;
    with_quotes(&world).await;
    let viewer = world.viewer().await;

    let all = world.query(&viewer, QUOTES, json!({})).await;
    let sent = world
        .query(&viewer, QUOTES, json!({ "filter": { "status": "SENT" } }))
        .await;
    let acme = world
        .query(
            &viewer,
            QUOTES,
            json!({ "filter": { "accountId": world.acme } }),
        )
        .await;
    let both = world
        .query(
            &viewer,
            QUOTES,
            json!({ "filter": { "accountId": world.globex, "status": "SENT" } }),
        )
        .await;
    let other_tenant = world
        .token(world.tenant_b, Uuid::new_v4(), vec![Role::Viewer], None)
        .await;
    let b = world.query(&other_tenant, QUOTES, json!({})).await;

    assert_eq!(titles(&all, "quotes"), ["Q1", "Q2", "Q3", "Q4", "Q5"]);
    assert_eq!(all["data"]["quotes"]["totalCount"], 5);
    assert_eq!(titles(&sent, "quotes"), ["Q2", "Q3"]);
    assert_eq!(sent["data"]["quotes"]["totalCount"], 2);
    assert_eq!(titles(&acme, "quotes"), ["Q1", "Q2", "Q5"]);
    assert_eq!(titles(&both, "quotes"), ["Q3"]);
    assert_eq!(titles(&b, "quotes"), ["B1"]);
    assert_eq!(b["data"]["quotes"]["totalCount"], 1);
    world.teardown().await;
}

#[actix_web::test]
async fn quotes_ordered_by_total_page_to_an_empty_end_and_refuse_foreign_cursors() {
    let world = World::new().await;
    with_quotes(&world).await;
    let viewer = world.viewer().await;
    let by_total = json!({ "field": "TOTAL", "direction": "DESC" });

    let mut pages = Vec::new();
    let mut after = Value::Null;
    for _ in 0..4 {
        let vars = json!({ "first": 2, "after": after, "orderBy": by_total });
        let page = world.query(&viewer, QUOTES, vars).await;
        after = page["data"]["quotes"]["pageInfo"]["endCursor"].clone();
        pages.push(page);
    }
    let cursor = pages[0]["data"]["quotes"]["pageInfo"]["endCursor"].clone();
    let mismatched = world
        .query(&viewer, QUOTES, json!({ "after": cursor }))
        .await;
    let newest = world
        .query(
            &viewer,
            QUOTES,
            json!({ "first": 1, "orderBy": { "field": "CREATED_AT", "direction": "DESC" } }),
        )
        .await;

    let seen: Vec<Vec<String>> = pages.iter().map(|p| titles(p, "quotes")).collect();
    assert_eq!(
        seen,
        [vec!["Q4", "Q2"], vec!["Q3", "Q1"], vec!["Q5"], vec![]]
    );
    let info = |i: usize| pages[i]["data"]["quotes"]["pageInfo"].clone();
    assert_eq!(info(0)["hasNextPage"], true);
    assert_eq!(info(0)["hasPreviousPage"], false);
    assert_eq!(info(1)["hasNextPage"], true);
    assert_eq!(info(2)["hasNextPage"], false);
    assert_eq!(info(3)["endCursor"], Value::Null);
    assert_eq!(
        pages[0]["data"]["quotes"]["edges"][0]["node"]["total"],
        "10000.00"
    );
    assert_eq!(
        mismatched["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{mismatched}"
    );
    assert_eq!(titles(&newest, "quotes"), ["Q5"]);
    world.teardown().await;
}

#[actix_web::test]
async fn a_quote_comes_with_its_lines_and_totals_and_another_tenants_is_null() {
    let world = World::new().await;
    let ids = with_quotes(&world).await;
    let id = ids[1];
    world
        .sql(&format!(
            "insert into read.quote_lines (quote_id, line_id, tenant_id, position, sku, \
             description, quantity, unit, unit_price, volume_discount_percent, line_total) \
             values \
             ('{id}', gen_random_uuid(), '{a}', 2, 'B', 'Second', 1, null, 500.50, 0, 500.50), \
             ('{id}', gen_random_uuid(), '{a}', 1, 'A', 'First', 10, 'Hour', 210, 4.75, 2000.0000)",
            a = world.tenant_a
        ))
        .await;
    let query = "query One($id: UUID!) { quote(id: $id) { title status subtotal total \
        lineDiscounts quoteDiscount discountPercent tier currency \
        lines { position sku quantity unit unitPrice volumeDiscountPercent lineTotal } } }";

    let own = world
        .query(&world.viewer().await, query, json!({ "id": id }))
        .await;
    let foreign = world
        .query(
            &world
                .token(
                    world.tenant_b,
                    Uuid::new_v4(),
                    vec![Role::TenantAdmin],
                    None,
                )
                .await,
            query,
            json!({ "id": id }),
        )
        .await;

    let quote = &own["data"]["quote"];
    assert_eq!(quote["status"], "SENT", "{own}");
    assert_eq!(quote["total"], "2500.50");
    assert_eq!(quote["tier"], "GOLD");
    let lines = quote["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["sku"], "A");
    assert_eq!(lines[0]["lineTotal"], "2000.0000");
    assert_eq!(lines[0]["volumeDiscountPercent"], "4.75");
    assert_eq!(lines[1]["unitPrice"], "500.50");
    // A row a projector older than units wrote (null) counts pieces.
    assert_eq!([&lines[0]["unit"], &lines[1]["unit"]], ["HOUR", "PIECE"]);
    assert_eq!(foreign, json!({ "data": { "quote": null } }));
    world.teardown().await;
}

async fn with_contracts(world: &World) -> (Uuid, Uuid) {
    let (acme_contract, globex_contract) = (Uuid::new_v4(), Uuid::new_v4());
    for (id, account, title, days) in [
        (acme_contract, world.acme, "Acme support", 3),
        (globex_contract, world.globex, "Globex support", 2),
    ] {
        world
            .sql(&format!(
                "insert into read.contracts (id, tenant_id, account_id, title, status, value, \
                 currency, start_date, end_date, terms, version, term, created_at, updated_at, \
                 stream_version) values ('{id}', '{t}', '{account}', '{title}', 'Active', \
                 12000.00, 'EUR', current_date, current_date + {days}, 'Net 45', 2, 1, \
                 now() - interval '{days} days', now(), 7); \
                 insert into read.contract_versions (contract_id, version, tenant_id, terms, \
                 value, amended_at) values ('{id}', 1, '{t}', 'Net 30', 10000.00, now()), \
                 ('{id}', 2, '{t}', 'Net 45', 12000.00, now())",
                t = world.tenant_a
            ))
            .await;
    }
    (acme_contract, globex_contract)
}

#[actix_web::test]
async fn a_partner_sees_only_its_own_accounts_quotes_and_contracts() {
    let world = World::new().await;
    let ids = with_quotes(&world).await;
    let (acme_contract, globex_contract) = with_contracts(&world).await;
    let partner = world
        .token(
            world.tenant_a,
            Uuid::new_v4(),
            vec![Role::Partner],
            Some(world.acme),
        )
        .await;
    let unlinked = world
        .token(world.tenant_a, Uuid::new_v4(), vec![Role::Partner], None)
        .await;
    let contracts = "{ contracts { totalCount edges { node { title } } } }";
    let one = "query One($q: UUID!, $c: UUID!) { quote(id: $q) { title } \
        contract(id: $c) { title } }";

    let quotes = world.query(&partner, QUOTES, json!({})).await;
    let asked_for_other = world
        .query(
            &partner,
            QUOTES,
            json!({ "filter": { "accountId": world.globex } }),
        )
        .await;
    let own_contracts = world.query(&partner, contracts, json!({})).await;
    let foreign = world
        .query(&partner, one, json!({ "q": ids[2], "c": globex_contract }))
        .await;
    let own = world
        .query(&partner, one, json!({ "q": ids[0], "c": acme_contract }))
        .await;
    let nothing = world.query(&unlinked, QUOTES, json!({})).await;

    assert_eq!(titles(&quotes, "quotes"), ["Q1", "Q2", "Q5"]);
    assert_eq!(quotes["data"]["quotes"]["totalCount"], 3);
    assert!(titles(&asked_for_other, "quotes").is_empty());
    assert_eq!(titles(&own_contracts, "contracts"), ["Acme support"]);
    assert_eq!(own_contracts["data"]["contracts"]["totalCount"], 1);
    assert_eq!(foreign["data"], json!({ "quote": null, "contract": null }));
    assert_eq!(
        own["data"],
        json!({ "quote": { "title": "Q1" }, "contract": { "title": "Acme support" } })
    );
    assert_eq!(nothing["data"]["quotes"]["totalCount"], 0);
    world.teardown().await;
}

#[actix_web::test]
async fn a_contract_comes_with_its_versions_and_contracts_filter_and_order() {
    let world = World::new().await;
    let (acme_contract, _) = with_contracts(&world).await;
    let query = "query One($id: UUID!) { contract(id: $id) { title status value version \
        streamVersion startDate versions { version terms value } } }";
    let list = "query L($filter: ContractFilter, $orderBy: ContractOrder) { \
        contracts(filter: $filter, orderBy: $orderBy) { totalCount edges { node { title } } } }";

    let one = world
        .query(&world.viewer().await, query, json!({ "id": acme_contract }))
        .await;
    let ending_soon = world
        .query(
            &world.viewer().await,
            list,
            json!({ "filter": { "endsBy": chrono::Utc::now().date_naive() + chrono::Duration::days(2) } }),
        )
        .await;
    let by_end = world
        .query(
            &world.viewer().await,
            list,
            json!({ "orderBy": { "field": "END_DATE", "direction": "DESC" } }),
        )
        .await;

    let contract = &one["data"]["contract"];
    assert_eq!(contract["status"], "ACTIVE", "{one}");
    assert_eq!(contract["value"], "12000.00");
    assert_eq!(contract["version"], 2);
    assert_eq!(contract["streamVersion"], 7);
    assert_eq!(
        contract["versions"],
        json!([
            { "version": 1, "terms": "Net 30", "value": "10000.00" },
            { "version": 2, "terms": "Net 45", "value": "12000.00" }
        ])
    );
    assert_eq!(titles(&ending_soon, "contracts"), ["Globex support"]);
    assert_eq!(
        titles(&by_end, "contracts"),
        ["Acme support", "Globex support"]
    );
    world.teardown().await;
}

/// Tenant A's approvals by name, and the users `pendingForMe` is asked for.
struct Approvals {
    manager: Uuid,
    delegate: Uuid,
    admin: Uuid,
    /// Managers `ApproveLevel` would refuse: a limit below the amount, a limit in dollars,
    /// deactivated, and a former Manager (now a Viewer) a level was delegated to.
    unfit: [Uuid; 4],
    ids: Vec<(&'static str, Uuid)>,
}

/// A level as (role, approved by, delegated to).
type Level = (&'static str, Option<Uuid>, Option<Uuid>);
/// An approval as (name, requester, status, current level, levels).
type Case = (&'static str, Uuid, &'static str, Option<i32>, Vec<Level>);

async fn with_approvals(world: &World) -> Approvals {
    let (manager, delegate, admin, requester) = (
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
    );
    let unfit = [(); 4].map(|_| Uuid::new_v4());
    let eur = |limit: &str| Some((limit.to_owned(), "EUR"));
    for (id, roles, limit, active) in [
        (manager, "Manager", eur("100000"), true),
        (delegate, "Manager", eur("20000"), true),
        (admin, "TenantAdmin", eur("1000000"), true),
        (unfit[0], "Manager", eur("19999.99"), true),
        (
            unfit[1],
            "Manager",
            Some(("100000".to_owned(), "USD")),
            true,
        ),
        (unfit[2], "Manager", eur("100000"), false),
        (unfit[3], "Viewer", eur("100000"), true),
    ] {
        user_row(world, id, roles, limit, active).await;
    }
    let none = None;
    let cases: [Case; 6] = [
        (
            "for managers",
            requester,
            "Pending",
            Some(1),
            vec![("Manager", none, none)],
        ),
        (
            "at the admin level",
            requester,
            "Pending",
            Some(2),
            vec![
                ("Manager", Some(manager), none),
                ("TenantAdmin", none, none),
            ],
        ),
        (
            "delegated",
            requester,
            "Pending",
            Some(1),
            vec![("Manager", none, Some(delegate))],
        ),
        (
            "decided",
            requester,
            "Approved",
            None,
            vec![("Manager", Some(admin), none)],
        ),
        (
            "own request",
            manager,
            "Pending",
            Some(1),
            vec![("Manager", none, none)],
        ),
        (
            "delegated to a former manager",
            requester,
            "Pending",
            Some(1),
            vec![("Manager", none, Some(unfit[3]))],
        ),
    ];
    let mut ids = Vec::new();
    for (days, (name, requester_id, status, current, levels)) in (1..).zip(cases) {
        let id = Uuid::new_v4();
        sqlx::query(
            "insert into read.approvals (id, tenant_id, subject_type, subject_id, \
                 subject_version, amount, currency, requester_id, status, current_level, \
                 level_count, requested_at, version, updated_at) \
             values ($1, $2, 'Quote', gen_random_uuid(), 1, 20000, 'EUR', $3, $4, $5, $6, \
                 now() - make_interval(days => $7), 1, now())",
        )
        .bind(id)
        .bind(world.tenant_a)
        .bind(requester_id)
        .bind(status)
        .bind(current)
        .bind(levels.len() as i32)
        .bind(10 - days)
        .execute(&world.owner)
        .await
        .unwrap();
        for (level, (role, approved_by, delegated_to)) in (1..).zip(levels) {
            sqlx::query(
                "insert into read.approval_levels (approval_id, level, tenant_id, role, due_at, \
                 approved_by, delegated_to) values ($1, $2, $3, $4, now(), $5, $6)",
            )
            .bind(id)
            .bind(level)
            .bind(world.tenant_a)
            .bind(role)
            .bind(approved_by)
            .bind(delegated_to)
            .execute(&world.owner)
            .await
            .unwrap();
        }
        ids.push((name, id));
    }
    Approvals {
        manager,
        delegate,
        admin,
        unfit,
        ids,
    }
}

/// A `read.users` row: what `pendingForMe` knows of the caller.
async fn user_row(
    world: &World,
    id: Uuid,
    role: &str,
    limit: Option<(String, &str)>,
    active: bool,
) {
    let (amount, currency) = limit.unzip();
    sqlx::query(
        "insert into read.users (id, tenant_id, email, display_name, roles, approval_limit, \
             approval_limit_currency, active, version, registered_at, updated_at) \
         values ($1, $2, $3, $3, array[$4], $5::numeric, $6, $7, 1, now(), now())",
    )
    .bind(id)
    .bind(world.tenant_a)
    .bind(format!("{id}@example.test"))
    .bind(role)
    .bind(amount)
    .bind(currency)
    .bind(active)
    .execute(&world.owner)
    .await
    .unwrap();
}

fn approval_names(body: &Value, approvals: &Approvals) -> Vec<&'static str> {
    body["data"]["approvals"]["edges"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|e| {
            let id: Uuid = e["node"]["id"].as_str().unwrap().parse().unwrap();
            approvals.ids.iter().find(|(_, i)| *i == id).unwrap().0
        })
        .collect()
}

#[actix_web::test]
async fn pending_for_me_lists_what_the_caller_may_decide_now() {
    let world = World::new().await;
    let approvals = with_approvals(&world).await;
    let query = "query A($filter: ApprovalFilter) { approvals(filter: $filter) { \
        totalCount edges { node { id status currentLevel } } } }";
    let mine = json!({ "filter": { "pendingForMe": true } });
    let as_user = |id, roles| world.token(world.tenant_a, id, roles, None);

    let manager = world
        .query(
            &as_user(approvals.manager, vec![Role::Manager]).await,
            query,
            mine.clone(),
        )
        .await;
    let delegate = world
        .query(
            &as_user(approvals.delegate, vec![Role::Operator]).await,
            query,
            mine.clone(),
        )
        .await;
    let admin = world
        .query(
            &as_user(approvals.admin, vec![Role::TenantAdmin]).await,
            query,
            mine.clone(),
        )
        .await;
    let pending = world
        .query(
            &world.viewer().await,
            query,
            json!({ "filter": { "status": "PENDING" } }),
        )
        .await;
    let everything = world.query(&world.viewer().await, query, json!({})).await;

    assert_eq!(approval_names(&manager, &approvals), ["for managers"]);
    assert_eq!(manager["data"]["approvals"]["totalCount"], 1);
    // The delegate is a Manager too: every undelegated Manager level is theirs as well.
    assert_eq!(
        approval_names(&delegate, &approvals),
        ["for managers", "delegated", "own request"]
    );
    assert_eq!(approval_names(&admin, &approvals), ["at the admin level"]);
    // The token's roles do not count: the user's current facts do.
    for unfit in approvals.unfit {
        let token = as_user(unfit, vec![Role::Manager]).await;
        let listed = world.query(&token, query, mine.clone()).await;
        assert_eq!(
            approval_names(&listed, &approvals),
            [] as [&str; 0],
            "{unfit}"
        );
    }
    assert_eq!(pending["data"]["approvals"]["totalCount"], 5);
    assert_eq!(
        approval_names(&everything, &approvals),
        [
            "for managers",
            "at the admin level",
            "delegated",
            "decided",
            "own request",
            "delegated to a former manager"
        ],
        "oldest request first"
    );
    world.teardown().await;
}

#[actix_web::test]
async fn an_approval_comes_with_its_levels() {
    let world = World::new().await;
    let approvals = with_approvals(&world).await;
    let id = approvals.ids[1].1;
    let query = "query One($id: UUID!) { approval(id: $id) { status subjectType amount \
        currentLevel levelCount levels { level role approvedBy delegatedTo escalated } } }";

    let reply = world
        .query(&world.viewer().await, query, json!({ "id": id }))
        .await;
    let foreign = world
        .query(
            &world
                .token(world.tenant_b, Uuid::new_v4(), vec![Role::Viewer], None)
                .await,
            query,
            json!({ "id": id }),
        )
        .await;

    let approval = &reply["data"]["approval"];
    assert_eq!(approval["status"], "PENDING", "{reply}");
    assert_eq!(approval["subjectType"], "QUOTE");
    assert_eq!(approval["amount"], "20000");
    assert_eq!(approval["currentLevel"], 2);
    assert_eq!(
        approval["levels"],
        json!([
            { "level": 1, "role": "MANAGER", "approvedBy": approvals.manager,
              "delegatedTo": null, "escalated": false },
            { "level": 2, "role": "TENANT_ADMIN", "approvedBy": null,
              "delegatedTo": null, "escalated": false }
        ])
    );
    assert_eq!(foreign["data"]["approval"], Value::Null);
    world.teardown().await;
}

#[actix_web::test]
async fn users_filter_by_role_and_a_partner_sees_only_its_accounts_users() {
    let world = World::new().await;
    let partner_id = Uuid::new_v4();
    world
        .sql(&format!(
            "insert into read.users (id, tenant_id, email, display_name, roles, account_id, \
             approval_limit, approval_limit_currency, active, version, registered_at, \
             updated_at) values \
             (gen_random_uuid(), '{a}', 'boss@a.test', 'Boss', '{{Manager,Operator}}', null, \
              5000.00, 'EUR', true, 3, now(), now()), \
             (gen_random_uuid(), '{a}', 'ops@a.test', 'Ops', '{{Operator}}', null, null, null, \
              false, 2, now(), now()), \
             ('{partner_id}', '{a}', 'pat@acme.test', 'Pat', '{{Partner}}', '{acme}', null, \
              null, true, 1, now(), now()), \
             (gen_random_uuid(), '{b}', 'boss@b.test', 'B Boss', '{{Manager}}', null, null, \
              null, true, 1, now(), now())",
            a = world.tenant_a,
            b = world.tenant_b,
            acme = world.acme
        ))
        .await;
    let query = "query U($filter: UserFilter) { users(filter: $filter) { totalCount \
        edges { node { email roles active approvalLimit accountId } } } }";
    let emails = |body: &Value| -> Vec<String> {
        body["data"]["users"]["edges"]
            .as_array()
            .unwrap_or_else(|| panic!("{body}"))
            .iter()
            .map(|e| e["node"]["email"].as_str().unwrap().to_owned())
            .collect()
    };
    let partner = world
        .token(
            world.tenant_a,
            partner_id,
            vec![Role::Partner],
            Some(world.acme),
        )
        .await;

    let all = world.query(&world.viewer().await, query, json!({})).await;
    let operators = world
        .query(
            &world.viewer().await,
            query,
            json!({ "filter": { "role": "OPERATOR" } }),
        )
        .await;
    let active_operators = world
        .query(
            &world.viewer().await,
            query,
            json!({ "filter": { "role": "OPERATOR", "active": true } }),
        )
        .await;
    let seen_by_partner = world.query(&partner, query, json!({})).await;

    assert_eq!(emails(&all), ["boss@a.test", "ops@a.test", "pat@acme.test"]);
    assert_eq!(all["data"]["users"]["totalCount"], 3);
    let boss = &all["data"]["users"]["edges"][0]["node"];
    assert_eq!(boss["roles"], json!(["MANAGER", "OPERATOR"]));
    assert_eq!(boss["approvalLimit"], "5000.00");
    assert_eq!(emails(&operators), ["boss@a.test", "ops@a.test"]);
    assert_eq!(emails(&active_operators), ["boss@a.test"]);
    assert_eq!(emails(&seen_by_partner), ["pat@acme.test"]);
    world.teardown().await;
}

/// `count` quotes of tenant A, each with two lines.
async fn with_quotes_and_lines(world: &World, count: i32) {
    sqlx::query(
        "insert into read.quotes (id, tenant_id, account_id, title, currency, tier, status, \
             valid_until, subtotal, line_discounts, quote_discount, total, discount_percent, \
             version, created_at, updated_at) \
         select gen_random_uuid(), $1, $2, 'Q' || n, 'EUR', 'Gold', 'Draft', \
             now() + interval '30 days', 10, 0, 0, 10, 0, 1, now() - make_interval(mins => n), \
             now() \
         from generate_series(1, $3) n",
    )
    .bind(world.tenant_a)
    .bind(world.acme)
    .bind(count)
    .execute(&world.owner)
    .await
    .unwrap();
    world
        .sql(
            "insert into read.quote_lines (quote_id, line_id, tenant_id, position, sku, \
             description, quantity, unit_price, volume_discount_percent, line_total) \
             select q.id, gen_random_uuid(), q.tenant_id, p, 'SKU-' || p, 'Line', 1, 5, 0, 5 \
             from read.quotes q, generate_series(1, 2) p",
        )
        .await;
}

/// Runs `query` as a viewer of tenant A inside a transaction of its own, the way the HTTP route
/// does, and returns the response with the number of statements its resolvers ran.
async fn run_counting(world: &World, query: String) -> (Value, u64) {
    let claims = Claims {
        sub: Uuid::new_v4(),
        sid: Uuid::new_v4(),
        tid: world.tenant_a,
        tenant: "t".into(),
        email: "viewer@example.test".into(),
        roles: vec![Role::Viewer],
        account_id: None,
        exp: 0,
        iat: 0,
        api_key: false,
    };
    let tx = TenantTx::begin(&world.app_pool, world.tenant_a)
        .await
        .unwrap();
    let request = async_graphql::Request::new(query);
    let response = query_api::execute(&build_schema(), request, claims, &tx).await;
    let statements = tx.statements();
    tx.finish(true).await.unwrap();
    let body = serde_json::to_value(&response).unwrap();
    (body, statements)
}

fn nested_lists(page: usize) -> String {
    format!(
        "{{ quotes(first: {page}) {{ edges {{ node {{ id lines {{ sku }} }} }} }} \
         approvals(first: {page}) {{ edges {{ node {{ levels {{ level }} }} }} }} \
         contracts(first: {page}) {{ edges {{ node {{ versions {{ version }} }} }} }} }}"
    )
}

#[actix_web::test]
async fn nested_lists_are_loaded_in_one_statement_per_list_whatever_the_page_size() {
    let world = World::new().await;
    with_quotes_and_lines(&world, 50).await;
    with_approvals(&world).await;
    with_contracts(&world).await;

    let (small, small_count) = run_counting(&world, nested_lists(2)).await;
    let (full, full_count) = run_counting(&world, nested_lists(50)).await;

    let quotes = full["data"]["quotes"]["edges"]
        .as_array()
        .unwrap_or_else(|| panic!("{full}"));
    assert_eq!(quotes.len(), 50);
    assert!(quotes
        .iter()
        .all(|q| q["node"]["lines"] == json!([{ "sku": "SKU-1" }, { "sku": "SKU-2" }])));
    let levels = |body: &Value| body["data"]["approvals"]["edges"][1]["node"]["levels"].clone();
    assert_eq!(levels(&full), json!([{ "level": 1 }, { "level": 2 }]));
    assert_eq!(
        full["data"]["contracts"]["edges"][0]["node"]["versions"],
        json!([{ "version": 1 }, { "version": 2 }])
    );
    assert!(small["errors"].is_null(), "{small}");
    // Three pages and three batches of children, for 2 rows a list as for 50.
    assert_eq!(small_count, 6);
    assert_eq!(full_count, 6);
    world.teardown().await;
}

/// Forged cursors and NUL characters are the client's mistake: `BAD_USER_INPUT`, never an
/// internal error (and no database error in the log).
#[actix_web::test]
async fn forged_cursors_and_nul_characters_are_bad_user_input() {
    use base64::Engine;
    let world = World::new().await;
    with_approvals(&world).await;
    let viewer = world.viewer().await;
    let forge = |position: Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(position.to_string())
    };
    let id = Uuid::new_v4();
    let approvals = "query A($after: String) { approvals(after: $after) { totalCount } }";
    let users = "query U($after: String, $search: String) { \
        users(after: $after, filter: { search: $search }) { totalCount } }";
    let cases = [
        // A time column compared with text, a date or an amount.
        (
            approvals,
            json!({ "after": forge(json!({"column": "requested_at", "key": {"Text": "x"}, "id": id})) }),
        ),
        (
            approvals,
            json!({ "after": forge(json!({"column": "requested_at", "key": {"Amount": "1"}, "id": id})) }),
        ),
        // NUL inside a cursor's text, and inside a search.
        (
            users,
            json!({ "after": forge(json!({"column": "email", "key": {"Text": "a\u{0}b"}, "id": id})) }),
        ),
        (users, json!({ "search": "ad\u{0}min" })),
        (
            "query N($name: String) { accounts(filter: { nameContains: $name }) { totalCount } }",
            json!({ "name": "Ac\u{0}me" }),
        ),
    ];
    for (query, variables) in cases {
        let reply = world.query(&viewer, query, variables.clone()).await;
        assert_eq!(
            reply["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
            "{variables}: {reply}"
        );
    }
    world.teardown().await;
}
