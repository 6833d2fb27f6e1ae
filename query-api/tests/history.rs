//! `eventHistory`, `auditLog` and `asOf` against a real Postgres: events of two tenants
//! appended as the superuser with chosen times and metadata (account events decided by the real
//! `Account` aggregate, so `asOf` replays what the command side would have stored), read through
//! the routes on a `b2b_api` pool. Needs the local stack (`deploy/local/stack.sh up`).
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{test, App};
use aggregates::account::{Account, AccountCommand, AccountEvent, AccountServices, Tier};
use aggregates::{Actor, Command, DomainError, Role, TenantPolicy};
use auth::Identity;
use chrono::{DateTime, TimeZone, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use query_api::{configure, QueryApi};
use serde_json::{json, Value};
use sqlx::PgPool;
use test_support::TestDatabase;
use uuid::Uuid;

mod support;

const SECRET: &[u8] = b"query-api-history-secret";

struct World {
    database: TestDatabase,
    owner: PgPool,
    app_pool: PgPool,
    identity: Identity,
    tenant_a: Uuid,
    tenant_b: Uuid,
}

/// One event to append: whose stream, when, and who caused it.
struct Append<'a> {
    tenant: Uuid,
    aggregate_type: &'a str,
    id: Uuid,
    sequence: i64,
    event_type: String,
    payload: Value,
    at: DateTime<Utc>,
    actor: Who<'a>,
}

enum Who<'a> {
    User(Uuid),
    System(&'a str),
}

impl World {
    async fn new() -> Self {
        let support::Database {
            database,
            owner,
            app_pool,
        } = support::create_database("query_api_history").await;
        let identity = support::identity(&app_pool, SECRET);
        Self {
            database,
            owner,
            app_pool,
            identity,
            tenant_a: Uuid::new_v4(),
            tenant_b: Uuid::new_v4(),
        }
    }

    /// A session of a new user of `tenant`.
    async fn token(&self, tenant: Uuid, roles: Vec<Role>, account: Option<Uuid>) -> String {
        let user = Uuid::new_v4();
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

    async fn viewer(&self, tenant: Uuid) -> String {
        self.token(tenant, vec![Role::Viewer], None).await
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
        test::call_and_read_body_json(&app, request).await
    }

    /// Appends in a transaction of its own, so commit order is the order of the calls.
    async fn append(&self, event: Append<'_>) {
        let (key, value) = match event.actor {
            Who::User(id) => ("user_id", id.to_string()),
            Who::System(process) => ("system_process", process.to_owned()),
        };
        let metadata = json!({
            "tenant_id": event.tenant,
            key: value,
            "correlation_id": correlation(event.id),
            "causation_id": Uuid::new_v4(),
            "request_id": Uuid::new_v4(),
        });
        sqlx::query(
            "insert into events (aggregate_type, aggregate_id, sequence, event_type, \
             event_version, payload, metadata, recorded_at) \
             values ($1, $2, $3, $4, '1.0', $5::json, $6::json, $7)",
        )
        .bind(event.aggregate_type)
        .bind(event.id.to_string())
        .bind(event.sequence)
        .bind(event.event_type)
        .bind(event.payload)
        .bind(metadata)
        .bind(event.at)
        .execute(&self.owner)
        .await
        .unwrap();
    }

    /// The audit log shows only transactions older than every one still running anywhere in
    /// the cluster (other tests' included); waits until that horizon has passed our appends.
    async fn await_commit_horizon(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let passed: bool = sqlx::query_scalar(
                "select coalesce(max(tx_id) < pg_snapshot_xmin(pg_current_snapshot()), true) \
                 from events",
            )
            .fetch_one(&self.owner)
            .await
            .unwrap();
            if passed {
                return;
            }
            assert!(Instant::now() < deadline, "the xmin horizon never moved on");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn teardown(self) {
        support::drop_database(self.database, [self.app_pool, self.owner]).await;
    }
}

/// Every event of a stream shares one correlation id in these tests.
fn correlation(stream: Uuid) -> Uuid {
    Uuid::new_v5(&stream, b"correlation")
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 3, 1, 9, 0, 0).unwrap()
}

fn minutes(n: i64) -> DateTime<Utc> {
    t0() + chrono::Duration::minutes(n)
}

/// A tenant on the default policy, the only outside fact the account's commands here read.
struct DefaultPolicy;

#[async_trait::async_trait]
impl AccountServices for DefaultPolicy {
    async fn policy(&self, _tenant_id: Uuid) -> Result<TenantPolicy, DomainError> {
        Ok(TenantPolicy::default())
    }
}

/// Decides `body` on `account` as `actor` and applies the one event it yields, as the command
/// side does (the aggregate's own `handle`), so the stored payloads are exactly what replay
/// must read back.
async fn decide(
    account: &mut Account,
    tenant: Uuid,
    actor: Actor,
    body: AccountCommand,
) -> AccountEvent {
    let command = Command::new(tenant, actor, t0(), body);
    let services: aggregates::account::Services = Arc::new(DefaultPolicy);
    let sink = EventSink::default();
    account.handle(command, &services, &sink).await.unwrap();
    let mut events = sink.collect().await;
    assert_eq!(events.len(), 1);
    events.remove(0)
}

/// An account's three events: opened (Gold) by `opener` at t0, moved to Enterprise by
/// `manager` at t0+60, activated by the quote-acceptance process at t0+120.
async fn account_events(
    tenant: Uuid,
    opener: Uuid,
    manager: Uuid,
) -> Vec<(AccountEvent, i64, Who<'static>)> {
    let mut account = Account::default();
    let staff = |id| Actor::user(id, vec![Role::Manager]);
    let opened = decide(
        &mut account,
        tenant,
        staff(opener),
        AccountCommand::OpenAccount {
            name: "Acme".into(),
            legal_name: "Acme GmbH".into(),
            country: "DE".into(),
            billing_email: "billing@acme.test".into(),
            currency: "EUR".into(),
            tier: Tier::Gold,
        },
    )
    .await;
    let tiered = decide(
        &mut account,
        tenant,
        staff(manager),
        AccountCommand::ChangeTier {
            tier: Tier::Enterprise,
        },
    )
    .await;
    let activated = decide(
        &mut account,
        tenant,
        Actor::system("process.quote-acceptance"),
        AccountCommand::ActivateAccount {
            quote_id: Uuid::new_v4(),
        },
    )
    .await;
    vec![
        (opened, 0, Who::User(opener)),
        (tiered, 60, Who::User(manager)),
        (activated, 120, Who::System("process.quote-acceptance")),
    ]
}

fn account_append(
    tenant: Uuid,
    id: Uuid,
    sequence: i64,
    event: (AccountEvent, i64, Who<'_>),
) -> Append<'_> {
    let (event, at, actor) = event;
    Append {
        tenant,
        aggregate_type: "Account",
        id,
        sequence,
        event_type: event.event_type(),
        payload: serde_json::to_value(&event).unwrap(),
        at: minutes(at),
        actor,
    }
}

fn quote_append(tenant: Uuid, id: Uuid, sequence: i64, at: i64, user: Uuid) -> Append<'static> {
    Append {
        tenant,
        aggregate_type: "Quote",
        id,
        sequence,
        event_type: format!("QuoteStep{sequence}"),
        payload: json!({ format!("QuoteStep{sequence}"): {} }),
        at: minutes(at),
        actor: Who::User(user),
    }
}

/// Tenant A: account `acme` and quote `quote` interleaved in commit order
/// (acme 1, quote 1, acme 2, quote 2, acme 3); tenant B: one account of its own.
struct Seeded {
    acme: Uuid,
    quote: Uuid,
    other: Uuid,
    opener: Uuid,
    manager: Uuid,
    payloads: Vec<Value>,
}

async fn seed(world: &World) -> Seeded {
    let (acme, quote, other) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let (opener, manager) = (Uuid::new_v4(), Uuid::new_v4());
    let a = world.tenant_a;
    let mut payloads = Vec::new();
    let mut events = account_events(a, opener, manager).await.into_iter();
    let mut next_account = |sequence| {
        let append = account_append(a, acme, sequence, events.next().unwrap());
        payloads.push(append.payload.clone());
        append
    };
    world.append(next_account(1)).await;
    world.append(quote_append(a, quote, 1, 30, opener)).await;
    world.append(next_account(2)).await;
    world.append(quote_append(a, quote, 2, 90, opener)).await;
    world.append(next_account(3)).await;
    let b_user = Uuid::new_v4();
    for (sequence, event) in (1..).zip(account_events(world.tenant_b, b_user, b_user).await) {
        world
            .append(account_append(world.tenant_b, other, sequence, event))
            .await;
    }
    Seeded {
        acme,
        quote,
        other,
        opener,
        manager,
        payloads,
    }
}

const HISTORY: &str = r#"
query H($type: AggregateType!, $id: UUID!, $first: Int, $after: String) {
  eventHistory(aggregateType: $type, aggregateId: $id, first: $first, after: $after) {
    totalCount
    edges { cursor node { aggregateType aggregateId sequence eventType eventVersion payload
      recordedAt userId systemProcess correlationId causationId requestId globalPosition } }
    pageInfo { hasNextPage hasPreviousPage endCursor }
  }
}"#;

const AUDIT: &str = r#"
query A($from: DateTime, $to: DateTime, $userId: UUID, $type: AggregateType, $first: Int,
        $after: String) {
  auditLog(from: $from, to: $to, userId: $userId, aggregateType: $type, first: $first,
           after: $after) {
    totalCount
    edges { node { aggregateType aggregateId sequence } }
    pageInfo { hasNextPage endCursor }
  }
}"#;

const AS_OF: &str = r#"
query S($type: AggregateType!, $id: UUID!, $at: DateTime!) {
  asOf(aggregateType: $type, aggregateId: $id, at: $at) {
    aggregateType aggregateId version recordedAt state
  }
}"#;

fn nodes(body: &Value, field: &str) -> Vec<Value> {
    body["data"][field]["edges"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|e| e["node"].clone())
        .collect()
}

/// The audit log's events as (type, sequence), in the order served.
fn stream_steps(body: &Value) -> Vec<(String, i64)> {
    nodes(body, "auditLog")
        .iter()
        .map(|n| {
            let kind = n["aggregateType"].as_str().unwrap().to_owned();
            (kind, n["sequence"].as_i64().unwrap())
        })
        .collect()
}

fn steps(expected: &[(&str, i64)]) -> Vec<(String, i64)> {
    expected.iter().map(|(k, s)| (k.to_string(), *s)).collect()
}

#[actix_web::test]
async fn event_history_lists_a_streams_events_in_sequence_order_with_their_metadata() {
    let world = World::new().await;
    let seeded = seed(&world).await;
    let viewer = world.viewer(world.tenant_a).await;
    let vars =
        |after: Value| json!({ "type": "ACCOUNT", "id": seeded.acme, "first": 2, "after": after });

    let first = world.query(&viewer, HISTORY, vars(Value::Null)).await;
    let cursor = first["data"]["eventHistory"]["pageInfo"]["endCursor"].clone();
    let second = world.query(&viewer, HISTORY, vars(cursor)).await;

    let events: Vec<Value> = [
        nodes(&first, "eventHistory"),
        nodes(&second, "eventHistory"),
    ]
    .concat();
    let sequences: Vec<i64> = events
        .iter()
        .map(|e| e["sequence"].as_i64().unwrap())
        .collect();
    assert_eq!(sequences, [1, 2, 3]);
    let types: Vec<&str> = events
        .iter()
        .map(|e| e["eventType"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        ["AccountOpened", "AccountTierChanged", "AccountActivated"]
    );
    assert_eq!(first["data"]["eventHistory"]["totalCount"], 3);
    assert_eq!(
        first["data"]["eventHistory"]["pageInfo"]["hasNextPage"],
        true
    );
    assert_eq!(
        second["data"]["eventHistory"]["pageInfo"]["hasNextPage"],
        false
    );
    assert_eq!(
        second["data"]["eventHistory"]["pageInfo"]["hasPreviousPage"],
        true
    );
    let opened = &events[0];
    assert_eq!(opened["aggregateType"], "ACCOUNT");
    assert_eq!(opened["aggregateId"], seeded.acme.to_string());
    assert_eq!(opened["eventVersion"], "1.0");
    assert_eq!(opened["payload"], seeded.payloads[0]);
    assert_eq!(opened["recordedAt"], "2024-03-01T09:00:00+00:00");
    assert_eq!(opened["userId"], seeded.opener.to_string());
    assert_eq!(opened["systemProcess"], Value::Null);
    assert_eq!(
        opened["correlationId"],
        correlation(seeded.acme).to_string()
    );
    assert!(opened["causationId"].is_string() && opened["requestId"].is_string());
    assert_eq!(events[1]["userId"], seeded.manager.to_string());
    assert_eq!(events[2]["userId"], Value::Null);
    assert_eq!(events[2]["systemProcess"], "process.quote-acceptance");
    let positions: Vec<i64> = events
        .iter()
        .map(|e| e["globalPosition"].as_i64().unwrap())
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
    world.teardown().await;
}

#[actix_web::test]
async fn another_tenants_stream_has_no_history_no_state_and_no_audit_entries() {
    let world = World::new().await;
    let seeded = seed(&world).await;
    world.await_commit_horizon().await;
    let b = world.viewer(world.tenant_b).await;
    let a_stream = json!({ "type": "ACCOUNT", "id": seeded.acme });
    let at = json!({ "type": "ACCOUNT", "id": seeded.acme, "at": minutes(500) });

    let history = world.query(&b, HISTORY, a_stream).await;
    let state = world.query(&b, AS_OF, at).await;
    let audit = world.query(&b, AUDIT, json!({})).await;
    let own_state = world
        .query(
            &b,
            AS_OF,
            json!({ "type": "ACCOUNT", "id": seeded.other, "at": minutes(500) }),
        )
        .await;

    assert!(nodes(&history, "eventHistory").is_empty());
    assert_eq!(history["data"]["eventHistory"]["totalCount"], 0);
    assert_eq!(state, json!({ "data": { "asOf": null } }));
    let ids: Vec<Value> = nodes(&audit, "auditLog")
        .iter()
        .map(|n| n["aggregateId"].clone())
        .collect();
    assert_eq!(ids, vec![json!(seeded.other.to_string()); 3]);
    assert_eq!(audit["data"]["auditLog"]["totalCount"], 3);
    assert_eq!(own_state["data"]["asOf"]["version"], 3);
    world.teardown().await;
}

#[actix_web::test]
async fn as_of_replays_the_stream_up_to_the_asked_time() {
    let world = World::new().await;
    let seeded = seed(&world).await;
    let viewer = world.viewer(world.tenant_a).await;
    let at = |when: DateTime<Utc>| json!({ "type": "ACCOUNT", "id": seeded.acme, "at": when });

    let before = world.query(&viewer, AS_OF, at(minutes(-1))).await;
    let opened = world.query(&viewer, AS_OF, at(minutes(0))).await;
    let between = world.query(&viewer, AS_OF, at(minutes(119))).await;
    let now = world.query(&viewer, AS_OF, at(Utc::now())).await;

    assert_eq!(before, json!({ "data": { "asOf": null } }));
    let state = |body: &Value| body["data"]["asOf"].clone();
    assert_eq!(state(&opened)["version"], 1, "{opened}");
    assert_eq!(state(&opened)["recordedAt"], "2024-03-01T09:00:00+00:00");
    assert_eq!(state(&opened)["aggregateType"], "ACCOUNT");
    assert_eq!(
        state(&opened)["state"],
        json!({ "status": "Prospect", "tier": "Gold", "currency": "EUR", "active_contracts": [] })
    );
    assert_eq!(state(&between)["version"], 2);
    assert_eq!(state(&between)["recordedAt"], "2024-03-01T10:00:00+00:00");
    assert_eq!(state(&between)["state"]["tier"], "Enterprise");
    assert_eq!(state(&between)["state"]["status"], "Prospect");
    assert_eq!(state(&now)["version"], 3);
    assert_eq!(state(&now)["state"]["status"], "Active");
    world.teardown().await;
}

/// Folds are kept (the state asked for and one every 100 events): answers from them, in any
/// order of times, equal a replay from the first event.
#[actix_web::test]
async fn as_of_on_a_long_stream_answers_from_kept_folds_as_a_fresh_replay_would() {
    const CHANGES: i64 = 249;
    let world = World::new().await;
    let (tenant, id, manager) = (world.tenant_a, Uuid::new_v4(), Uuid::new_v4());
    let staff = Actor::user(manager, vec![Role::Manager]);
    let mut account = Account::default();
    let open = AccountCommand::OpenAccount {
        name: "Long".into(),
        legal_name: "Long GmbH".into(),
        country: "DE".into(),
        billing_email: "billing@long.test".into(),
        currency: "EUR".into(),
        tier: Tier::Gold,
    };
    let mut history = vec![decide(&mut account, tenant, staff.clone(), open).await];
    let mut tiers = vec!["Gold"];
    for n in 0..CHANGES {
        let (tier, name) = [
            (Tier::Standard, "Standard"),
            (Tier::Enterprise, "Enterprise"),
            (Tier::Gold, "Gold"),
        ][n as usize % 3];
        let change = AccountCommand::ChangeTier { tier };
        history.push(decide(&mut account, tenant, staff.clone(), change).await);
        tiers.push(name);
    }
    let mut events = history.into_iter().enumerate().peekable();
    let viewer = world.viewer(tenant).await;
    // Asked at two lengths of the stream: the kept timeline and folds must take in what was
    // appended after they were kept.
    for (appended, minutes_asked) in [
        (200, &[150, 150, 249, 120, 99, 100, 101, 0, 199, 250][..]),
        (CHANGES + 1, &[150, 249, 199, 250, 200][..]),
    ] {
        while let Some((n, event)) = events.next_if(|(n, _)| (*n as i64) < appended) {
            let at = n as i64;
            let append = account_append(tenant, id, at + 1, (event, at, Who::User(manager)));
            world.append(append).await;
        }
        for &minute in minutes_asked {
            let at = json!({ "type": "ACCOUNT", "id": id, "at": minutes(minute) });
            let body = world.query(&viewer, AS_OF, at).await;
            let last = minute.min(appended - 1);
            assert_eq!(body["data"]["asOf"]["version"], last + 1, "{body}");
            assert_eq!(
                body["data"]["asOf"]["state"]["tier"], tiers[last as usize],
                "at minute {minute} of {appended} events: {body}"
            );
        }
    }
    world.teardown().await;
}

#[actix_web::test]
async fn the_audit_log_is_in_commit_order_filters_and_pages() {
    let world = World::new().await;
    let seeded = seed(&world).await;
    world.await_commit_horizon().await;
    let viewer = world.viewer(world.tenant_a).await;
    let audit = |vars: Value| world.query(&viewer, AUDIT, vars);

    let all = audit(json!({})).await;
    let by_opener = audit(json!({ "userId": seeded.opener })).await;
    let quotes = audit(json!({ "type": "QUOTE" })).await;
    let window = audit(json!({ "from": minutes(60), "to": minutes(120) })).await;
    let mut pages = Vec::new();
    let mut after = Value::Null;
    for _ in 0..3 {
        let page = audit(json!({ "first": 2, "after": after })).await;
        after = page["data"]["auditLog"]["pageInfo"]["endCursor"].clone();
        pages.push(page);
    }

    let everything = steps(&[
        ("ACCOUNT", 1),
        ("QUOTE", 1),
        ("ACCOUNT", 2),
        ("QUOTE", 2),
        ("ACCOUNT", 3),
    ]);
    assert_eq!(stream_steps(&all), everything);
    assert_eq!(all["data"]["auditLog"]["totalCount"], 5);
    assert_eq!(
        stream_steps(&by_opener),
        steps(&[("ACCOUNT", 1), ("QUOTE", 1), ("QUOTE", 2)])
    );
    assert_eq!(by_opener["data"]["auditLog"]["totalCount"], 3);
    assert_eq!(stream_steps(&quotes), steps(&[("QUOTE", 1), ("QUOTE", 2)]));
    assert_eq!(
        stream_steps(&window),
        steps(&[("ACCOUNT", 2), ("QUOTE", 2)]),
        "to is exclusive"
    );
    let paged: Vec<(String, i64)> = pages.iter().flat_map(stream_steps).collect();
    assert_eq!(paged, everything);
    let has_next: Vec<&Value> = pages
        .iter()
        .map(|p| &p["data"]["auditLog"]["pageInfo"]["hasNextPage"])
        .collect();
    assert_eq!(has_next, [&json!(true), &json!(true), &json!(false)]);
    let foreign_cursor = world
        .query(
            &viewer,
            HISTORY,
            json!({ "type": "QUOTE", "id": seeded.quote, "after": pages[0]["data"]["auditLog"]["pageInfo"]["endCursor"] }),
        )
        .await;
    assert_eq!(
        foreign_cursor["errors"][0]["extensions"]["code"],
        "BAD_USER_INPUT"
    );
    world.teardown().await;
}

#[actix_web::test]
async fn a_partner_reads_the_history_of_its_own_accounts_streams_only_and_no_audit_log() {
    let world = World::new().await;
    let seeded = seed(&world).await;
    let globex = Uuid::new_v4();
    world
        .append(quote_append(world.tenant_a, globex, 1, 10, seeded.opener))
        .await;
    for (quote, account) in [(seeded.quote, seeded.acme), (globex, Uuid::new_v4())] {
        sqlx::query(
            "insert into read.quotes (id, tenant_id, account_id, title, currency, tier, status, \
             valid_until, subtotal, line_discounts, quote_discount, total, discount_percent, \
             version, created_at, updated_at) values ($1, $2, $3, 'Q', 'EUR', 'Gold', 'Draft', \
             now(), 0, 0, 0, 0, 0, 1, now(), now())",
        )
        .bind(quote)
        .bind(world.tenant_a)
        .bind(account)
        .execute(&world.owner)
        .await
        .unwrap();
    }
    let partner = world
        .token(world.tenant_a, vec![Role::Partner], Some(seeded.acme))
        .await;
    let stream = |kind: &str, id: Uuid| json!({ "type": kind, "id": id });

    let own_account = world
        .query(&partner, HISTORY, stream("ACCOUNT", seeded.acme))
        .await;
    let own_quote = world
        .query(&partner, HISTORY, stream("QUOTE", seeded.quote))
        .await;
    let other_quote = world
        .query(&partner, HISTORY, stream("QUOTE", globex))
        .await;
    // Another account of the tenant, asked for first by someone who may read it, so the
    // process keeps the stream's timeline.
    let hidden = Uuid::new_v4();
    let opener = seeded.opener;
    for (sequence, event) in (1..).zip(account_events(world.tenant_a, opener, opener).await) {
        world
            .append(account_append(world.tenant_a, hidden, sequence, event))
            .await;
    }
    let admin = world
        .token(world.tenant_a, vec![Role::TenantAdmin], None)
        .await;
    let hidden_state = |token| {
        let world = &world;
        async move {
            world
                .query(
                    token,
                    AS_OF,
                    json!({ "type": "ACCOUNT", "id": hidden, "at": minutes(500) }),
                )
                .await
        }
    };
    let hidden_for_admin = hidden_state(&admin).await;
    let hidden_for_partner = hidden_state(&partner).await;
    let other_state = world
        .query(
            &partner,
            AS_OF,
            json!({ "type": "QUOTE", "id": globex, "at": minutes(500) }),
        )
        .await;
    let own_state = world
        .query(
            &partner,
            AS_OF,
            json!({ "type": "ACCOUNT", "id": seeded.acme, "at": minutes(500) }),
        )
        .await;
    let audit = world.query(&partner, AUDIT, json!({})).await;

    assert_eq!(own_account["data"]["eventHistory"]["totalCount"], 3);
    assert_eq!(own_quote["data"]["eventHistory"]["totalCount"], 2);
    assert!(nodes(&other_quote, "eventHistory").is_empty());
    assert_eq!(other_quote["data"]["eventHistory"]["totalCount"], 0);
    assert_eq!(
        hidden_for_admin["data"]["asOf"]["version"], 3,
        "{hidden_for_admin}"
    );
    assert_eq!(hidden_for_partner, json!({ "data": { "asOf": null } }));
    assert_eq!(other_state, json!({ "data": { "asOf": null } }));
    assert_eq!(own_state["data"]["asOf"]["version"], 3);
    assert_eq!(
        audit["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{audit}"
    );
    assert_eq!(audit["data"], Value::Null);
    world.teardown().await;
}
