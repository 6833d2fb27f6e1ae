//! The right to be forgotten (crypto-shredding): personal data is sealed in the store with a key
//! of its subject, and `ForgetUser` / `ForgetContactData` destroy the keys. Afterwards no
//! readable copy remains in the database, the exports or the broker's queues, every reader
//! shows the erased marker, and the history still verifies.
use lapin::options::{BasicGetOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{eventually, problem, Api, Process, Tenant, TestStack, PASSWORD};

const ERASED: &str = "[erased]";
const PAT_NAME: &str = "Pat Forgettable";
const PAT_FIRST_EMAIL: &str = "pat.first@forget.test";
const PAT_EMAIL: &str = "pat.second@forget.test";
const LEGAL_NAME: &str = "Sole Trader Quentin Zebedee";
const BILLING_EMAIL: &str = "quentin.billing@zebedee.test";
const BUYER_NAME: &str = "Casey Signing-Buyer";
const BUYER_EMAIL: &str = "casey.buyer@zebedee.test";

/// Every plain text that names the two subjects.
const PERSONAL: [&str; 7] = [
    PAT_NAME,
    PAT_FIRST_EMAIL,
    PAT_EMAIL,
    LEGAL_NAME,
    BILLING_EMAIL,
    BUYER_NAME,
    BUYER_EMAIL,
];

struct World {
    stack: TestStack,
    tenant: Tenant,
    api: Api,
    admin: String,
    pat: Uuid,
    account: Uuid,
    contract: Uuid,
    broker: lapin::Connection,
    queue: String,
    _server: Process,
}

#[tokio::test]
async fn forgotten_subjects_leave_no_readable_copy_anywhere_and_the_history_still_verifies() {
    let world = world_with_personal_data().await;
    let (stack, api, admin) = (&world.stack, &world.api, world.admin.as_str());

    // The events hold it sealed from the start; the API reads it while the keys live.
    let in_events: Vec<String> = rows_holding_personal_data(&stack.db)
        .await
        .into_iter()
        .filter(|row| row.starts_with("public.events:"))
        .collect();
    assert_eq!(in_events, Vec::<String>::new());
    let user = user_fields(&world).await;
    assert_eq!(user, json!({"email": PAT_EMAIL, "displayName": PAT_NAME}));
    let (ok, out, err) = stack.b2b(&["audit", "checkpoint"]).await;
    assert!(ok, "{out}{err}");

    let pat_version = api
        .ok_in(admin, "users", world.pat, json!({"type": "ForgetUser"}))
        .await;
    let account_version = api
        .ok_in(
            admin,
            "accounts",
            world.account,
            json!({"type": "ForgetContactData"}),
        )
        .await;
    wait_for(&world, world.pat, pat_version).await;
    wait_for(&world, world.account, account_version).await;

    // The database: the read models erased, the credentials gone, the events sealed.
    assert_erased_everywhere(&world).await;
    let data = query(
        &world,
        &format!(
            r#"{{ account(id: "{}") {{ legalName billingEmail name }}
               contract(id: "{}") {{ customerSignatory customerSignatoryEmail
                                     vendorSignatory vendorSignatoryEmail }} }}"#,
            world.account, world.contract
        ),
    )
    .await;
    assert_eq!(
        data["account"],
        json!({"legalName": ERASED, "billingEmail": ERASED, "name": "Zebedee"})
    );
    assert_eq!(
        data["contract"],
        json!({"customerSignatory": ERASED, "customerSignatoryEmail": ERASED,
               "vendorSignatory": ERASED, "vendorSignatoryEmail": ERASED})
    );

    // History and asOf, even as of a moment before the forgetting.
    let history = query(
        &world,
        &format!(
            r#"{{ eventHistory(aggregateType: USER, aggregateId: "{}") {{
                   edges {{ node {{ eventType payload }} }} }} }}"#,
            world.pat
        ),
    )
    .await;
    let registered = &history["eventHistory"]["edges"][0]["node"];
    assert_eq!(registered["eventType"], "UserRegistered");
    assert_eq!(registered["payload"]["UserRegistered"]["email"], ERASED);
    assert_eq!(
        registered["payload"]["UserRegistered"]["display_name"],
        ERASED
    );
    let before_forgetting = chrono::Utc::now() - chrono::Duration::seconds(1);
    let as_of = query(
        &world,
        &format!(
            r#"{{ asOf(aggregateType: USER, aggregateId: "{}", at: "{}") {{ state }} }}"#,
            world.pat,
            before_forgetting.to_rfc3339()
        ),
    )
    .await;
    assert_readable_nowhere(&as_of.to_string(), "asOf");
    assert!(as_of.to_string().contains(ERASED), "{as_of}");

    // The export keeps the stored (sealed) payload the hash covers, and reveals it erased.
    let (ok, export, err) = stack
        .b2b(&["events", "export", "--tenant", &world.tenant.slug])
        .await;
    assert!(ok, "{err}");
    assert_readable_nowhere(&export, "the export");
    let registered: Value = export
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .find(|line| {
            line["event_type"] == "UserRegistered"
                && line["aggregate_id"] == json!(world.pat.to_string())
        })
        .expect("the user's registration is exported");
    assert!(registered["payload"]["UserRegistered"]["email"]["sealed"].is_string());
    assert_eq!(
        registered["revealed_payload"]["UserRegistered"]["email"],
        ERASED
    );

    // What RabbitMQ carried was sealed all along.
    let messages = queued_messages(&world).await;
    assert!(
        messages.iter().any(|m| m.contains("UserForgotten")),
        "the queue saw the whole workload"
    );
    for message in &messages {
        assert_readable_nowhere(message, "a queued message");
    }

    // The chain is whole: nothing stored changed, the keys are gone instead.
    let (ok, out, err) = stack.b2b(&["audit", "verify"]).await;
    assert!(ok, "verify failed after forgetting: {out}{err}");

    // A rebuild reads the forgotten fields erased too.
    for read_model in ["users", "accounts", "contracts"] {
        let (ok, out, err) = stack.b2b(&["projections", "rebuild", read_model]).await;
        assert!(ok, "rebuild {read_model}: {out}{err}");
    }
    assert_erased_everywhere(&world).await;

    // No key can seal anything about a forgotten user again (a racing append is refused).
    let new_key = sqlx::query(
        "insert into subject_keys (key_id, tenant_id, subject, secret) \
         values (gen_random_uuid(), $1, $2, decode(repeat('00', 32), 'hex'))",
    )
    .bind(world.tenant.id)
    .bind(format!("user:{}", world.pat))
    .execute(&stack.db)
    .await;
    let refused = new_key.expect_err("a key for a forgotten user");
    assert!(refused.to_string().contains("was forgotten"), "{refused}");

    // A forgotten user can never sign in again, and nothing more is recorded about them.
    let login = api.login_as(&world.tenant, PAT_EMAIL, PASSWORD).await;
    assert_eq!(login.status(), StatusCode::UNAUTHORIZED);
    let change = api
        .command(admin, "users", world.pat)
        .json(&json!({"type": "ChangeEmail", "email": "pat.back@forget.test"}))
        .send()
        .await
        .unwrap();
    let refused = problem(change, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(
        refused["type"], "/problems/rule-violated/user_forgotten",
        "{refused}"
    );
}

#[tokio::test]
async fn new_contact_data_after_forgetting_is_sealed_with_a_new_key_and_readable() {
    let stack = TestStack::new().await;
    let tenant = stack.create_tenant("reforget").await;
    let server = stack.spawn(&["command-api"]).await;
    let api = Api::new(&server);
    let admin = api.login(&tenant).await;
    let account = Uuid::new_v4();
    api.ok(&admin, account, crate::helpers::open_account("Zebedee"))
        .await;
    api.ok(&admin, account, json!({"type": "ForgetContactData"}))
        .await;
    let update = json!({"type": "UpdateAccountDetails", "billing_email": BILLING_EMAIL});
    api.ok(&admin, account, update).await;

    let keys: Vec<(bool,)> = sqlx::query_as(
        "select secret is not null from subject_keys where subject = $1 order by created_at",
    )
    .bind(format!("account:{account}"))
    .fetch_all(&stack.db)
    .await
    .unwrap();
    assert_eq!(
        keys,
        [(false,), (true,)],
        "the old key destroyed, a new one live"
    );
    let history = stack
        .b2b(&["events", "export", "--tenant", "reforget"])
        .await
        .1;
    let revealed: Vec<Value> = history
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .filter(|line| line["aggregate_id"] == json!(account.to_string()))
        .filter_map(|line| line.get("revealed_payload").cloned())
        .collect();
    assert_eq!(revealed[0]["AccountOpened"]["billing_email"], ERASED);
    assert_eq!(
        revealed[1]["AccountDetailsUpdated"]["billing_email"],
        BILLING_EMAIL
    );
    // A second forgetting is recorded: there is new data to forget.
    let version = api
        .ok(&admin, account, json!({"type": "ForgetContactData"}))
        .await;
    assert_eq!(version, 4);
}

/// A tenant with: a user (Operator) who changed their address once and signed a contract for
/// the vendor; an account whose legal name and billing e-mail name a person, and whose buyer
/// signed that contract. A queue of our own has been bound to the events exchange throughout.
async fn world_with_personal_data() -> World {
    let stack = TestStack::new().await;
    let tenant = stack.create_tenant("forget").await;
    let server = stack.spawn(&["serve"]).await;
    let api = Api::new(&server);
    let admin = api.login(&tenant).await;
    let (broker, queue) = bind_watching_queue(&stack).await;

    let pat = Uuid::new_v4();
    let register = json!({"type": "RegisterUser", "email": PAT_FIRST_EMAIL,
        "display_name": PAT_NAME, "roles": ["Operator"], "password": PASSWORD});
    api.ok_in(&admin, "users", pat, register).await;
    let change = json!({"type": "ChangeEmail", "email": PAT_EMAIL});
    api.ok_in(&admin, "users", pat, change).await;
    let manager = api
        .register(&admin, "manager@forget.test", json!(["Manager"]), None)
        .await;
    let limit = json!({"type": "SetApprovalLimit", "amount": "100000.00", "currency": "EUR"});
    api.ok_in(&admin, "users", manager, limit).await;
    let manager = api.sign_in(&tenant, "manager@forget.test").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let pat_token = api.sign_in(&tenant, PAT_EMAIL).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();

    let account = Uuid::new_v4();
    let open = json!({"type": "OpenAccount", "name": "Zebedee", "legal_name": LEGAL_NAME,
        "country": "DE", "billing_email": BILLING_EMAIL, "currency": "EUR", "tier": "Gold"});
    api.ok(&admin, account, open).await;
    let contract = approved_contract(&stack, &api, (&admin, &manager), account).await;
    let sign = |party: &str, name: &str, email: &str| {
        json!({"type": "SignContract", "party": party, "signatory_name": name,
               "signatory_email": email})
    };
    api.ok_in(
        &pat_token,
        "contracts",
        contract,
        sign("Vendor", PAT_NAME, PAT_EMAIL),
    )
    .await;
    let signed = api
        .ok_in(
            &admin,
            "contracts",
            contract,
            sign("Customer", BUYER_NAME, BUYER_EMAIL),
        )
        .await;
    let world = World {
        stack,
        tenant,
        api,
        admin,
        pat,
        account,
        contract,
        broker,
        queue,
        _server: server,
    };
    wait_for(&world, contract, signed).await;
    let query_signed = format!(r#"{{ contract(id: "{contract}") {{ vendorSignatory }} }}"#);
    let data = query(&world, &query_signed).await;
    assert_eq!(data["contract"]["vendorSignatory"], PAT_NAME);
    world
}

/// A contract of `account`, submitted by the admin and approved by the manager.
async fn approved_contract(
    stack: &TestStack,
    api: &Api,
    (admin, manager): (&str, &str),
    account: Uuid,
) -> Uuid {
    let contract = Uuid::new_v4();
    let draft = json!({"type": "DraftContract", "account_id": account, "title": "Supply",
        "value": "5000.00", "currency": "EUR", "start_date": "2030-01-01",
        "end_date": "2030-12-31", "terms": "Net 30"});
    api.ok_in(admin, "contracts", contract, draft).await;
    api.ok_in(
        admin,
        "contracts",
        contract,
        json!({"type": "SubmitContract"}),
    )
    .await;
    let approval: Uuid = eventually("the contract's approval request", || async {
        sqlx::query_scalar::<_, Uuid>("select id from read.approvals where subject_id = $1")
            .bind(contract)
            .fetch_optional(&stack.db)
            .await
            .unwrap()
    })
    .await;
    api.ok_in(
        manager,
        "approvals",
        approval,
        json!({"type": "ApproveLevel"}),
    )
    .await;
    eventually("the contract approved", || async {
        let status: Option<String> =
            sqlx::query_scalar("select status from read.contracts where id = $1")
                .bind(contract)
                .fetch_optional(&stack.db)
                .await
                .unwrap();
        (status.as_deref() == Some("Approved")).then_some(())
    })
    .await;
    contract
}

/// Every row, in every table of every schema, whose text holds any of [`PERSONAL`].
async fn rows_holding_personal_data(db: &PgPool) -> Vec<String> {
    let tables: Vec<String> = sqlx::query_scalar(
        "select format('%I.%I', schemaname, tablename) from pg_tables \
          where schemaname not in ('pg_catalog', 'information_schema')",
    )
    .fetch_all(db)
    .await
    .unwrap();
    let mut found = Vec::new();
    for table in tables {
        let rows: Vec<String> = sqlx::query_scalar(&format!(
            "select t::text from {table} t where lower(t::text) like any($1)"
        ))
        .bind(PERSONAL.map(|p| format!("%{}%", p.to_lowercase())))
        .fetch_all(db)
        .await
        .unwrap();
        found.extend(rows.into_iter().map(|row| format!("{table}: {row}")));
    }
    found
}

/// No table holds the plain text, and GraphQL shows the user erased.
async fn assert_erased_everywhere(world: &World) {
    assert_eq!(
        rows_holding_personal_data(&world.stack.db).await,
        Vec::<String>::new()
    );
    assert_eq!(
        user_fields(world).await,
        json!({"email": ERASED, "displayName": ERASED})
    );
}

fn assert_readable_nowhere(text: &str, what: &str) {
    let lower = text.to_lowercase();
    for personal in PERSONAL {
        assert!(
            !lower.contains(&personal.to_lowercase()),
            "{what} holds `{personal}`: {text}"
        );
    }
}

async fn user_fields(world: &World) -> Value {
    let data = query(
        world,
        "{ users(first: 100) { edges { node { id email displayName } } } }",
    )
    .await;
    let mut user = data["users"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|edge| edge["node"].clone())
        .find(|user| user["id"] == json!(world.pat.to_string()))
        .expect("the user is listed");
    user.as_object_mut().unwrap().remove("id");
    user
}

async fn query(world: &World, query: &str) -> Value {
    let reply = world.api.graphql(&world.admin, query, None).await;
    assert!(reply.get("errors").is_none(), "{reply}");
    reply["data"].clone()
}

/// Waits until the read models show `id` at `version`.
async fn wait_for(world: &World, id: Uuid, version: u64) {
    let reply = world
        .api
        .graphql(&world.admin, "{ me { userId } }", Some((id, version)))
        .await;
    assert!(reply.get("errors").is_none(), "{reply}");
}

/// A queue of the test's own, bound to every event the relay publishes from now on.
async fn bind_watching_queue(stack: &TestStack) -> (lapin::Connection, String) {
    let connection =
        lapin::Connection::connect(&stack.amqp_url, lapin::ConnectionProperties::default())
            .await
            .unwrap();
    let channel = connection.create_channel().await.unwrap();
    let queue = format!("{}.watching", stack.amqp_prefix);
    let exclusive = QueueDeclareOptions {
        exclusive: true,
        ..QueueDeclareOptions::default()
    };
    channel
        .queue_declare(queue.as_str().into(), exclusive, FieldTable::default())
        .await
        .unwrap();
    let exchange = format!("{}.events", stack.amqp_prefix);
    // The relay declares the exchange when it starts; `serve` may still be starting it.
    eventually("the events exchange", || async {
        let channel = connection.create_channel().await.unwrap();
        channel
            .queue_bind(
                queue.as_str().into(),
                exchange.as_str().into(),
                "#".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .ok()
    })
    .await;
    (connection, queue)
}

/// Every message the watching queue holds, as text.
async fn queued_messages(world: &World) -> Vec<String> {
    let channel = world.broker.create_channel().await.unwrap();
    let mut messages = Vec::new();
    while let Some(message) = channel
        .basic_get(
            world.queue.as_str().into(),
            BasicGetOptions { no_ack: true },
        )
        .await
        .unwrap()
    {
        messages.push(String::from_utf8_lossy(&message.delivery.data).into_owned());
    }
    messages
}
