//! The user, quote, approval and contract read models against the real stack: commands run
//! through the real `CommandBus`, the relay and projector carry their events into `read.*`,
//! and the rows must say what the events say, however often the events are delivered.
//! Needs `deploy/local/stack.sh up` and `source deploy/local/env.sh`.
mod support;

use aggregates::approval::{Approval, ApprovalCommand, SubjectType};
use aggregates::contract::{Contract, ContractCommand, Party};
use aggregates::quote::pricing::{quote_totals, LinePrice};
use aggregates::quote::{Quote, QuoteCommand, Unit};
use aggregates::user::{User, UserCommand};
use aggregates::{Actor, Command, CurrencyCode, Role};
use chrono::{DateTime, Duration, SubsecRound, Utc};
use event_store::history::stream_range;
use event_store::{BusAggregate, CommandBus, EventMetadata, StoredEvent};
use rust_decimal::Decimal;
use serde_json::Value;
use support::TestStack;
use uuid::Uuid;

/// Runs commands of any aggregate for the test's tenant, as a given actor at a given time.
struct Bus {
    bus: CommandBus,
    tenant_id: Uuid,
}

impl Bus {
    /// Users belong to a tenant that exists (credentials reference it), so the test's tenant
    /// is created first.
    async fn new(stack: &TestStack) -> Self {
        sqlx::query(
            "insert into tenants (id, slug, name) values ($1, $2, 'Test') \
             on conflict do nothing",
        )
        .bind(stack.tenant_id)
        .bind(format!("t-{}", stack.tenant_id.simple()))
        .execute(&stack.admin)
        .await
        .expect("create the tenant");
        Self {
            bus: CommandBus::new(stack.pool.clone()),
            tenant_id: stack.tenant_id,
        }
    }

    async fn run<A: BusAggregate>(
        &self,
        id: Uuid,
        actor: &Actor,
        at: DateTime<Utc>,
        body: A::Body,
    ) -> i64
    where
        A::Body: std::fmt::Debug,
    {
        let metadata = EventMetadata {
            tenant_id: self.tenant_id,
            actor: actor.clone(),
            correlation_id: Uuid::new_v4(),
            causation_id: Uuid::new_v4(),
            request_id: Uuid::new_v4(),
            recorded_at: Utc::now(),
            client: Some("read-models-test".to_owned()),
            traceparent: None,
            api_key_id: None,
        };
        let command = Command::new(self.tenant_id, actor.clone(), at, body.clone());
        let version = self
            .bus
            .store::<A>()
            .execute(&id.to_string(), command, None, &metadata)
            .await
            .unwrap_or_else(|e| panic!("{body:?} refused: {e}"));
        version as i64
    }

    async fn user(&self, id: Uuid, actor: &Actor, body: UserCommand) -> i64 {
        self.run::<User>(id, actor, Utc::now(), body).await
    }

    async fn quote(&self, id: Uuid, actor: &Actor, body: QuoteCommand) -> i64 {
        self.run::<Quote>(id, actor, Utc::now(), body).await
    }

    async fn approval_at(
        &self,
        id: Uuid,
        actor: &Actor,
        at: DateTime<Utc>,
        body: ApprovalCommand,
    ) -> i64 {
        self.run::<Approval>(id, actor, at, body).await
    }

    async fn contract(&self, id: Uuid, actor: &Actor, body: ContractCommand) -> i64 {
        self.run::<Contract>(id, actor, Utc::now(), body).await
    }

    /// Registers a user with these roles (and, unless Viewer or Partner, an approval limit).
    async fn register(&self, roles: Vec<Role>, limit: Option<u32>) -> Uuid {
        let (id, system) = (Uuid::new_v4(), Actor::system("test"));
        let register = UserCommand::RegisterUser {
            user_id: id,
            email: format!("{}@example.test", id.simple()),
            display_name: format!("User {}", &id.simple().to_string()[..6]),
            roles,
            account_id: None,
        };
        self.user(id, &system, register).await;
        if let Some(limit) = limit {
            let set = UserCommand::SetApprovalLimit {
                amount: Decimal::from(limit),
                currency: "EUR".into(),
            };
            self.user(id, &system, set).await;
        }
        id
    }
}

fn admin(stack: &TestStack) -> Actor {
    Actor::user(stack.user_id, vec![Role::TenantAdmin])
}

fn dec(text: &str) -> Decimal {
    text.parse().unwrap()
}

// ------------------------------------------------------------------------- reading rows --

/// Waits until `projection` has applied `sequence` of the stream.
async fn projected(stack: &TestStack, projection: &str, aggregate_type: &str, id: Uuid, seq: i64) {
    support::eventually(
        &format!("{projection} to apply {aggregate_type} {id} up to {seq}"),
        || async {
            let last = projections::checkpoint::last_applied(
                &stack.admin,
                projection,
                aggregate_type,
                &id.to_string(),
            )
            .await
            .unwrap();
            (last >= seq).then_some(())
        },
    )
    .await;
}

/// The rows of `table` where `column = id`, ordered by `order`, every value as text (numerics
/// keep their scale), read as the superuser.
async fn rows(stack: &TestStack, table: &str, column: &str, id: Uuid, order: &str) -> Vec<Value> {
    let sql = format!(
        "select (select jsonb_object_agg(key, value #>> '{{}}') from jsonb_each(to_jsonb(t))) \
         from read.{table} t where {column} = $1 order by {order}"
    );
    sqlx::query_scalar(&sql)
        .bind(id)
        .fetch_all(&stack.admin)
        .await
        .unwrap()
}

async fn row(stack: &TestStack, table: &str, id: Uuid) -> Value {
    let mut found = rows(stack, table, "id", id, "id").await;
    assert_eq!(found.len(), 1, "one {table} row for {id}");
    found.remove(0)
}

async fn events(stack: &TestStack, aggregate_type: &str, id: Uuid) -> Vec<StoredEvent> {
    stream_range(&stack.admin, aggregate_type, &id.to_string(), 0, i64::MAX)
        .await
        .unwrap()
}

/// The stamp columns every row shares, as the stream's first and last events say.
async fn assert_stamped(stack: &TestStack, table: &str, id: Uuid, aggregate_type: &str) {
    let stream = events(stack, aggregate_type, id).await;
    let (first, last) = (stream.first().unwrap(), stream.last().unwrap());
    let (created, version_column) = match table {
        "users" => ("registered_at", "version"),
        "contracts" => ("created_at", "stream_version"),
        _ => ("created_at", "version"),
    };
    let sql = format!(
        "select {created}, updated_at, {version_column}, tenant_id from read.{table} where id = $1"
    );
    let (created_at, updated_at, version, tenant_id): (DateTime<Utc>, DateTime<Utc>, i64, Uuid) =
        sqlx::query_as(&sql)
            .bind(id)
            .fetch_one(&stack.admin)
            .await
            .unwrap();
    assert_eq!(created_at, first.recorded_at);
    assert_eq!(updated_at, last.recorded_at);
    assert_eq!(version, last.sequence);
    assert_eq!(tenant_id, stack.tenant_id);
}

/// Everything `ids` have in `tables`, for before/after comparisons.
async fn snapshot(stack: &TestStack, tables: &[(&str, &str, &str)], ids: &[Uuid]) -> Vec<Value> {
    let mut all = Vec::new();
    for id in ids {
        for (table, column, order) in tables {
            all.extend(rows(stack, table, column, *id, order).await);
        }
    }
    all
}

/// Publishes the streams' events again, newest first and then in order, and waits until a
/// later event has been projected: on one queue, so have the duplicates.
async fn redeliver(stack: &TestStack, streams: &[(&str, Uuid)]) {
    let mut again = Vec::new();
    for (aggregate_type, id) in streams {
        let stream = events(stack, aggregate_type, *id).await;
        again.extend(stream.iter().rev().cloned());
        again.extend(stream);
    }
    stack.publish(&again).await;
    let sentinel = Uuid::new_v4();
    stack.accounts().open(sentinel, "Sentinel").await;
    stack.projected(sentinel, 1).await;
    assert_eq!(stack.parked().await, 0, "nothing was parked");
}

async fn started(stack: &mut TestStack) {
    stack.start_relay();
    stack.start_projector();
}

// --------------------------------------------------------------------------------- users --

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_users_match_the_user_events_and_redelivery_changes_nothing() {
    // One queue, so a message published later is handled after every earlier one.
    let mut stack = TestStack::new(1).await;
    started(&mut stack).await;
    let bus = Bus::new(&stack).await;
    let system = Actor::system("test");
    let account = Uuid::new_v4();
    stack.accounts().open(account, "Partnerco").await;

    let manager = bus.register(vec![Role::Manager], Some(5000)).await;
    let change_email = UserCommand::ChangeEmail {
        email: format!("Boss.{}@Example.test", manager.simple()),
    };
    // Only the user themself or a TenantAdmin changes an email, never a process.
    bus.user(manager, &admin(&stack), change_email).await;
    let roles = UserCommand::ChangeRoles {
        roles: vec![Role::Operator, Role::Manager],
        account_id: None,
    };
    bus.user(manager, &system, roles).await;
    let deactivate = UserCommand::DeactivateUser {
        reason: "On leave".into(),
    };
    let version = bus.user(manager, &system, deactivate).await;
    projected(&stack, "users", "User", manager, version).await;
    let on_leave = row(&stack, "users", manager).await;
    let version = bus
        .user(manager, &system, UserCommand::ReactivateUser {})
        .await;

    let partner = Uuid::new_v4();
    let register = UserCommand::RegisterUser {
        user_id: partner,
        email: "Partner@Partnerco.test".into(),
        display_name: "Pat Partner".into(),
        roles: vec![Role::Partner],
        account_id: Some(account),
    };
    let partner_version = bus.user(partner, &admin(&stack), register).await;

    projected(&stack, "users", "User", manager, version).await;
    projected(&stack, "users", "User", partner, partner_version).await;
    let row_m = row(&stack, "users", manager).await;
    assert_eq!(
        row_m["email"],
        format!("boss.{}@example.test", manager.simple())
    );
    assert_eq!(row_m["roles"], r#"["Manager", "Operator"]"#);
    assert_eq!(row_m["approval_limit"], "5000");
    assert_eq!(row_m["approval_limit_currency"], "EUR");
    assert_eq!(row_m["active"], "true");
    assert_eq!(row_m["deactivation_reason"], Value::Null);
    assert_eq!(row_m["account_id"], Value::Null);
    assert_eq!(
        row_m["registered_by"],
        Value::Null,
        "the system registered it"
    );
    assert_eq!(on_leave["active"], "false");
    assert_eq!(on_leave["deactivation_reason"], "On leave");
    assert_stamped(&stack, "users", manager, "User").await;

    let row_p = row(&stack, "users", partner).await;
    assert_eq!(row_p["email"], "partner@partnerco.test");
    assert_eq!(row_p["display_name"], "Pat Partner");
    assert_eq!(row_p["roles"], r#"["Partner"]"#);
    assert_eq!(row_p["account_id"], account.to_string());
    assert_eq!(row_p["approval_limit"], Value::Null);
    assert_eq!(row_p["registered_by"], stack.user_id.to_string());
    assert_stamped(&stack, "users", partner, "User").await;

    let tables = [("users", "id", "id")];
    let before = snapshot(&stack, &tables, &[manager, partner]).await;
    redeliver(&stack, &[("User", manager), ("User", partner)]).await;
    assert_eq!(snapshot(&stack, &tables, &[manager, partner]).await, before);
    stack.tear_down().await;
}

// -------------------------------------------------------------------------------- quotes --

const QUOTE_TABLES: [(&str, &str, &str); 2] = [
    ("quotes", "id", "id"),
    ("quote_lines", "quote_id", "position"),
];

fn add_line(line_id: Uuid, sku: &str, quantity: &str, unit_price: &str) -> QuoteCommand {
    QuoteCommand::AddLineItem {
        line_id,
        sku: sku.into(),
        description: format!("{sku} item"),
        quantity: dec(quantity),
        unit: Unit::Hour,
        unit_price: dec(unit_price),
    }
}

fn draft_quote(account_id: Uuid, title: &str) -> QuoteCommand {
    QuoteCommand::DraftQuote {
        account_id,
        title: title.into(),
        valid_until: Utc::now() + Duration::days(30),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_quotes_follow_drafts_submissions_and_answers() {
    let mut stack = TestStack::new(1).await;
    started(&mut stack).await;
    let bus = Bus::new(&stack).await;
    let (operator, system) = (
        Actor::user(Uuid::new_v4(), vec![Role::Operator]),
        Actor::system("test"),
    );
    let account = Uuid::new_v4();
    stack.accounts().open(account, "Buyer").await;

    // A draft, repriced after every change exactly as the aggregate prices it.
    let small = Uuid::new_v4();
    let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    bus.quote(small, &operator, draft_quote(account, "Small"))
        .await;
    bus.quote(small, &operator, add_line(a, "A-1", "12", "19.99"))
        .await;
    bus.quote(small, &operator, add_line(b, "B-2", "3", "100.50"))
        .await;
    bus.quote(small, &operator, add_line(c, "C-3", "1", "5"))
        .await;
    let change = QuoteCommand::ChangeLineItem {
        line_id: b,
        quantity: Some(dec("60")),
        unit_price: Some(dec("10.10")),
        description: None,
    };
    bus.quote(small, &operator, change).await;
    bus.quote(
        small,
        &operator,
        QuoteCommand::RemoveLineItem { line_id: c },
    )
    .await;
    let discount = QuoteCommand::SetQuoteDiscount {
        percent: dec("2.5"),
        reason: "Loyal".into(),
    };
    let draft_version = bus.quote(small, &operator, discount).await;
    projected(&stack, "quotes", "Quote", small, draft_version).await;

    let lines = rows(&stack, "quote_lines", "quote_id", small, "position").await;
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["sku"], "A-1");
    assert_eq!(lines[0]["position"], "1");
    assert_eq!(lines[1]["sku"], "B-2");
    assert_eq!(lines[1]["position"], "2");
    assert_eq!(lines[1]["quantity"], "60");
    assert_eq!(lines[1]["unit_price"], "10.10");
    assert_eq!(lines[1]["unit"], "Hour");
    // Standard tier: 2 % off from 10 pieces, 5 % from 50. Line totals are exact, not rounded.
    assert_eq!(lines[0]["volume_discount_percent"], "2");
    assert_eq!(lines[1]["volume_discount_percent"], "5");
    let prices = [("12", "19.99", "2"), ("60", "10.10", "5")].map(|(q, p, d)| LinePrice {
        quantity: dec(q),
        unit_price: dec(p),
        volume_discount_percent: dec(d),
    });
    assert_eq!(
        dec(lines[0]["line_total"].as_str().unwrap()),
        prices[0].net()
    );
    assert_eq!(dec(lines[1]["line_total"].as_str().unwrap()), dec("575.70"));
    let eur = CurrencyCode::parse("c", "EUR").unwrap();
    let expected = quote_totals(prices, dec("2.5"), &eur);
    let draft = row(&stack, "quotes", small).await;
    assert_eq!(draft["status"], "Draft");
    assert_eq!(draft["subtotal"], expected.subtotal.amount.to_string());
    // The subtotal is the gross (12 × 19.99 + 60 × 10.10), and the figures add up to the
    // total once each discount is taken off it.
    assert_eq!(draft["subtotal"], "845.88");
    assert_eq!(draft["line_discounts"], "35.10");
    assert_eq!(draft["quote_discount"], "20.27");
    assert_eq!(draft["total"], "790.51");
    assert_eq!(
        draft["line_discounts"],
        expected.line_discounts.amount.to_string()
    );
    assert_eq!(
        draft["quote_discount"],
        expected.quote_discount.amount.to_string()
    );
    assert_eq!(draft["total"], expected.total.amount.to_string());
    assert_eq!(draft["discount_percent"], "2.5");
    assert_eq!(draft["discount_reason"], "Loyal");
    assert_eq!(draft["tier"], "Standard");
    assert_eq!(draft["currency"], "EUR");

    // Small enough to be approved at submission; then sent and accepted.
    bus.quote(small, &operator, QuoteCommand::SubmitQuote {})
        .await;
    bus.quote(small, &operator, QuoteCommand::SendQuote {})
        .await;
    let accepted_version = bus
        .quote(small, &operator, QuoteCommand::AcceptQuote {})
        .await;
    projected(&stack, "quotes", "Quote", small, accepted_version).await;
    let submitted = events(&stack, "Quote", small).await;
    let submission = submitted
        .iter()
        .find(|e| e.event_type == "QuoteSubmitted")
        .unwrap();
    let totals = &submission.payload["QuoteSubmitted"]["totals"];
    let accepted = row(&stack, "quotes", small).await;
    assert_eq!(accepted["status"], "Accepted");
    assert_eq!(accepted["total"], totals["total"]["amount"]);
    assert_eq!(accepted["subtotal"], totals["subtotal"]["amount"]);
    assert_eq!(accepted["needs_approval"], "false");
    assert_eq!(accepted["approval_id"], Value::Null);
    assert_eq!(accepted["submissions"], "1");
    let operator_id = operator_id(&operator);
    for by in ["submitted_by", "sent_by", "accepted_by", "created_by"] {
        assert_eq!(accepted[by], operator_id, "{by}");
    }
    for at in ["submitted_at", "approved_at", "sent_at", "accepted_at"] {
        assert!(accepted[at].is_string(), "{at}");
    }
    assert_stamped(&stack, "quotes", small, "Quote").await;

    // Large enough to need approval: rejected, revised, withdrawn.
    let large = Uuid::new_v4();
    bus.quote(large, &operator, draft_quote(account, "Large"))
        .await;
    bus.quote(
        large,
        &operator,
        add_line(Uuid::new_v4(), "L", "1", "25000"),
    )
    .await;
    bus.quote(large, &operator, QuoteCommand::SubmitQuote {})
        .await;
    let approval_id = Uuid::new_v4();
    let reject = QuoteCommand::MarkQuoteRejected {
        approval_id,
        reason: "Too cheap".into(),
    };
    bus.quote(large, &system, reject).await;
    projected(&stack, "quotes", "Quote", large, 4).await;
    let rejected = row(&stack, "quotes", large).await;
    bus.quote(large, &operator, QuoteCommand::ReviseQuote {})
        .await;
    let withdraw = QuoteCommand::WithdrawQuote {
        reason: "Lost".into(),
    };
    let large_version = bus.quote(large, &operator, withdraw).await;
    projected(&stack, "quotes", "Quote", large, large_version).await;
    assert_eq!(rejected["status"], "Rejected");
    assert_eq!(rejected["needs_approval"], "true");
    assert_eq!(rejected["approval_id"], approval_id.to_string());
    assert_eq!(rejected["rejection_reason"], "Too cheap");
    assert_eq!(rejected["total"], "25000.00");
    let withdrawn = row(&stack, "quotes", large).await;
    assert_eq!(withdrawn["status"], "Withdrawn");
    assert_eq!(withdrawn["closing_reason"], "Lost");
    assert_eq!(withdrawn["withdrawn_by"], operator_id);
    assert_stamped(&stack, "quotes", large, "Quote").await;

    let before = snapshot(&stack, &QUOTE_TABLES, &[small, large]).await;
    redeliver(&stack, &[("Quote", small), ("Quote", large)]).await;
    assert_eq!(
        snapshot(&stack, &QUOTE_TABLES, &[small, large]).await,
        before
    );
    stack.tear_down().await;
}

fn operator_id(actor: &Actor) -> String {
    match actor {
        Actor::User { user_id, .. } => user_id.to_string(),
        Actor::System { .. } => unreachable!("a user"),
    }
}

// ----------------------------------------------------------------------------- approvals --

const APPROVAL_TABLES: [(&str, &str, &str); 2] = [
    ("approvals", "id", "id"),
    ("approval_levels", "approval_id", "level"),
];

fn request(requester_id: Uuid, amount: u32) -> ApprovalCommand {
    ApprovalCommand::RequestApproval {
        subject_type: SubjectType::Quote,
        subject_id: Uuid::new_v4(),
        subject_version: 3,
        amount: Decimal::from(amount),
        currency: "EUR".into(),
        requester_id,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_approvals_record_each_level_delegation_escalation_and_outcome() {
    let mut stack = TestStack::new(1).await;
    started(&mut stack).await;
    let bus = Bus::new(&stack).await;
    let system = Actor::system("test");
    let requester = bus.register(vec![Role::Operator], None).await;
    let manager = bus.register(vec![Role::Manager], Some(100_000)).await;
    let first_admin = bus.register(vec![Role::TenantAdmin], Some(100_000)).await;
    let second_admin = bus.register(vec![Role::TenantAdmin], Some(100_000)).await;
    let as_user = |id: Uuid, role: Role| Actor::user(id, vec![role]);
    let now = Utc::now();

    // 20,000: Manager, then TenantAdmin.
    let granted = Uuid::new_v4();
    bus.approval_at(granted, &system, now, request(requester, 20_000))
        .await;
    let approve = ApprovalCommand::ApproveLevel {
        comment: Some("Fine by me".into()),
    };
    bus.approval_at(granted, &as_user(manager, Role::Manager), now, approve)
        .await;
    let delegate = ApprovalCommand::DelegateLevel {
        to_user_id: second_admin,
    };
    let admin_actor = as_user(first_admin, Role::TenantAdmin);
    bus.approval_at(granted, &admin_actor, now, delegate).await;
    let delegated_version = 3;
    projected(&stack, "approvals", "Approval", granted, delegated_version).await;
    let delegated = rows(&stack, "approval_levels", "approval_id", granted, "level").await;
    let late = now + Duration::hours(30);
    bus.approval_at(granted, &system, late, ApprovalCommand::EscalateLevel {})
        .await;
    let approve = ApprovalCommand::ApproveLevel { comment: None };
    let granted_version = bus.approval_at(granted, &admin_actor, late, approve).await;

    // Rejected at its first level; and one cancelled by its requester.
    let rejected = Uuid::new_v4();
    bus.approval_at(rejected, &system, now, request(requester, 500))
        .await;
    let reject = ApprovalCommand::RejectApproval {
        reason: "No budget".into(),
    };
    let rejected_version = bus
        .approval_at(rejected, &as_user(manager, Role::Manager), now, reject)
        .await;
    let cancelled = Uuid::new_v4();
    bus.approval_at(cancelled, &system, now, request(requester, 500))
        .await;
    let cancel = ApprovalCommand::CancelApproval {
        reason: "Changed my mind".into(),
    };
    let cancelled_version = bus
        .approval_at(cancelled, &as_user(requester, Role::Operator), now, cancel)
        .await;

    projected(&stack, "approvals", "Approval", granted, granted_version).await;
    projected(&stack, "approvals", "Approval", rejected, rejected_version).await;
    projected(
        &stack,
        "approvals",
        "Approval",
        cancelled,
        cancelled_version,
    )
    .await;

    assert_eq!(delegated[1]["delegated_to"], second_admin.to_string());
    let approval = row(&stack, "approvals", granted).await;
    assert_eq!(approval["status"], "Approved");
    assert_eq!(approval["subject_type"], "Quote");
    assert_eq!(approval["subject_version"], "3");
    assert_eq!(approval["amount"], "20000");
    assert_eq!(approval["currency"], "EUR");
    assert_eq!(approval["requester_id"], requester.to_string());
    assert_eq!(approval["current_level"], Value::Null);
    assert_eq!(approval["level_count"], "2");
    assert_eq!(approval["decided_by"], first_admin.to_string());
    assert_eq!(approval["version"], granted_version.to_string());
    let levels = rows(&stack, "approval_levels", "approval_id", granted, "level").await;
    let stream = events(&stack, "Approval", granted).await;
    let escalated = &stream[3].payload["LevelEscalated"];
    assert_eq!(levels.len(), 2);
    assert_eq!(levels[0]["role"], "Manager");
    assert_eq!(levels[0]["approved_by"], manager.to_string());
    assert_eq!(levels[0]["comment"], "Fine by me");
    assert_eq!(levels[0]["escalated"], "false");
    assert_eq!(levels[1]["role"], "TenantAdmin");
    assert_eq!(levels[1]["escalated"], "true");
    assert_eq!(
        levels[1]["delegated_to"],
        Value::Null,
        "escalation drops it"
    );
    assert_eq!(levels[1]["approved_by"], first_admin.to_string());
    assert_eq!(levels[1]["comment"], Value::Null);
    let breached_at: DateTime<Utc> = sqlx::query_scalar(
        "select breached_at from read.approval_levels where approval_id = $1 and level = 2",
    )
    .bind(granted)
    .fetch_one(&stack.admin)
    .await
    .unwrap();
    // Postgres keeps microseconds.
    let overdue_since: DateTime<Utc> =
        serde_json::from_value(escalated["overdue_since"].clone()).unwrap();
    assert_eq!(breached_at, overdue_since.trunc_subsecs(6));

    let rejected_row = row(&stack, "approvals", rejected).await;
    assert_eq!(rejected_row["status"], "Rejected");
    assert_eq!(rejected_row["decided_by"], manager.to_string());
    assert_eq!(rejected_row["decision_reason"], "No budget");
    assert!(rejected_row["decided_at"].is_string());
    let cancelled_row = row(&stack, "approvals", cancelled).await;
    assert_eq!(cancelled_row["status"], "Cancelled");
    assert_eq!(cancelled_row["decided_by"], requester.to_string());
    assert_eq!(cancelled_row["decision_reason"], "Changed my mind");

    let ids = [granted, rejected, cancelled];
    let before = snapshot(&stack, &APPROVAL_TABLES, &ids).await;
    let streams = ids.map(|id| ("Approval", id));
    redeliver(&stack, &streams).await;
    assert_eq!(snapshot(&stack, &APPROVAL_TABLES, &ids).await, before);
    stack.tear_down().await;
}

// ----------------------------------------------------------------------------- contracts --

const CONTRACT_TABLES: [(&str, &str, &str); 2] = [
    ("contracts", "id", "id"),
    ("contract_versions", "contract_id", "version"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_contracts_keep_every_version_signature_and_lifecycle_step() {
    let mut stack = TestStack::new(1).await;
    started(&mut stack).await;
    let bus = Bus::new(&stack).await;
    let (editor, system) = (admin(&stack), Actor::system("test"));
    let account = Uuid::new_v4();
    stack.accounts().open(account, "Signer").await;
    let today = Utc::now().date_naive();
    let end = today + Duration::days(365);

    let id = Uuid::new_v4();
    let draft = ContractCommand::DraftContract {
        account_id: account,
        title: "Support".into(),
        value: dec("12000.00"),
        currency: "EUR".into(),
        start_date: today,
        end_date: end,
        terms: "Net 30".into(),
    };
    bus.contract(id, &editor, draft).await;
    let amend_terms = ContractCommand::AmendContract {
        terms: Some("Net 45".into()),
        value: None,
    };
    bus.contract(id, &editor, amend_terms).await;
    let amend_value = ContractCommand::AmendContract {
        terms: None,
        value: Some(dec("13500.50")),
    };
    bus.contract(id, &editor, amend_value).await;
    bus.contract(id, &editor, ContractCommand::SubmitContract {})
        .await;
    let approval_id = Uuid::new_v4();
    bus.contract(
        id,
        &system,
        ContractCommand::MarkContractApproved { approval_id },
    )
    .await;
    for party in [Party::Customer, Party::Vendor] {
        let sign = ContractCommand::SignContract {
            party,
            signatory_name: format!("{} Signer", party.as_str()),
            signatory_email: format!("{}@example.test", party.as_str()),
        };
        bus.contract(id, &editor, sign).await;
    }
    bus.contract(id, &system, ContractCommand::ActivateContract {})
        .await;
    let renew = ContractCommand::RenewContract {
        new_end_date: end + Duration::days(365),
        new_value: dec("14000.00"),
    };
    bus.contract(id, &editor, renew).await;
    let terminate = ContractCommand::TerminateContract {
        reason: "Merged".into(),
        effective_date: today + Duration::days(10),
    };
    let version = bus.contract(id, &editor, terminate).await;
    projected(&stack, "contracts", "Contract", id, version).await;

    // A second contract, abandoned as a draft.
    let abandoned = Uuid::new_v4();
    let draft = ContractCommand::DraftContract {
        account_id: account,
        title: "Never signed".into(),
        value: dec("1.00"),
        currency: "EUR".into(),
        start_date: today,
        end_date: end,
        terms: "Net 30".into(),
    };
    bus.contract(abandoned, &editor, draft).await;
    let cancel = ContractCommand::CancelContract {
        reason: "Customer chose another offer".into(),
    };
    let cancelled = bus.contract(abandoned, &editor, cancel).await;
    projected(&stack, "contracts", "Contract", abandoned, cancelled).await;
    let row_of_abandoned = row(&stack, "contracts", abandoned).await;
    assert_eq!(row_of_abandoned["status"], "Cancelled");
    assert_eq!(
        row_of_abandoned["cancelled_reason"],
        "Customer chose another offer"
    );

    let contract = row(&stack, "contracts", id).await;
    let expected = [
        ("account_id", account.to_string()),
        ("title", "Support".into()),
        ("status", "Terminated".into()),
        ("value", "14000.00".into()),
        ("currency", "EUR".into()),
        ("start_date", today.to_string()),
        ("end_date", (end + Duration::days(365)).to_string()),
        ("terms", "Net 45".into()),
        ("version", "3".into()),
        ("term", "2".into()),
        ("customer_signatory", "Customer Signer".into()),
        ("customer_signatory_email", "customer@example.test".into()),
        ("vendor_signatory", "Vendor Signer".into()),
        ("approval_id", approval_id.to_string()),
        ("activated_on", today.to_string()),
        ("terminated_reason", "Merged".into()),
        ("effective_date", (today + Duration::days(10)).to_string()),
        ("created_by", stack.user_id.to_string()),
    ];
    for (column, value) in expected {
        assert_eq!(contract[column], value, "{column}");
    }
    assert_eq!(contract["quote_id"], Value::Null);
    assert_eq!(contract["cancelled_reason"], Value::Null);
    assert!(contract["customer_signed_at"].is_string());
    assert!(contract["vendor_signed_at"].is_string());
    assert_stamped(&stack, "contracts", id, "Contract").await;
    let versions = rows(&stack, "contract_versions", "contract_id", id, "version").await;
    let seen: Vec<(&str, &str, &str)> = versions
        .iter()
        .map(|v| {
            (
                v["version"].as_str().unwrap(),
                v["terms"].as_str().unwrap(),
                v["value"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("1", "Net 30", "12000.00"),
            ("2", "Net 45", "12000.00"),
            ("3", "Net 45", "13500.50")
        ]
    );
    assert!(versions
        .iter()
        .all(|v| v["amended_by"] == stack.user_id.to_string()));

    let before = snapshot(&stack, &CONTRACT_TABLES, &[id]).await;
    redeliver(&stack, &[("Contract", id)]).await;
    assert_eq!(snapshot(&stack, &CONTRACT_TABLES, &[id]).await, before);
    stack.tear_down().await;
}
