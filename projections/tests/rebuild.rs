//! Rebuilding read models without downtime, the status report and parked messages, against the
//! real stack. Needs `deploy/local/stack.sh up` and `source deploy/local/env.sh`.
mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use aggregates::account::{Account, AccountCommand};
use aggregates::quote::{Quote, QuoteCommand, Unit};
use aggregates::user::{User, UserCommand};
use aggregates::{Actor, Command, Role};
use chrono::{Duration, Utc};
use event_store::history::{committed_after, CommitPosition};
use event_store::{CommandBus, EventMetadata};
use projections::{ParkedAction, RebuildScope, READ_MODELS};
use rust_decimal::Decimal;
use sqlx::PgPool;
use support::{eventually, TestStack};
use uuid::Uuid;

const READ_MODEL_NAMES: [&str; 5] = ["accounts", "users", "quotes", "approvals", "contracts"];

/// Random commands of accounts, users and quotes for one tenant; refusals (a rule says no to a
/// random command) are part of the mix and ignored.
struct Mix {
    bus: CommandBus,
    tenant_id: Uuid,
    accounts: Vec<Uuid>,
    users: Vec<Uuid>,
    quotes: Vec<(Uuid, Vec<Uuid>)>,
    seed: u64,
}

impl Mix {
    async fn new(stack: &TestStack, seed: u64) -> Self {
        Self::of_tenant(stack, stack.tenant_id, seed).await
    }

    async fn of_tenant(stack: &TestStack, tenant_id: Uuid, seed: u64) -> Self {
        sqlx::query(
            "insert into tenants (id, slug, name) values ($1, $2, 'Test') on conflict do nothing",
        )
        .bind(tenant_id)
        .bind(format!("t-{}", tenant_id.simple()))
        .execute(&stack.admin)
        .await
        .expect("create the tenant");
        Self {
            bus: CommandBus::new(stack.pool.clone()),
            tenant_id,
            accounts: Vec::new(),
            users: Vec::new(),
            quotes: Vec::new(),
            seed,
        }
    }

    /// xorshift: reproducible without a dependency.
    fn next(&mut self, below: usize) -> usize {
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        (self.seed % below as u64) as usize
    }

    fn metadata(&self, actor: &Actor) -> EventMetadata {
        EventMetadata {
            tenant_id: self.tenant_id,
            actor: actor.clone(),
            correlation_id: Uuid::new_v4(),
            causation_id: Uuid::new_v4(),
            request_id: Uuid::new_v4(),
            recorded_at: Utc::now(),
            client: Some("rebuild-test".to_owned()),
            traceparent: None,
            api_key_id: None,
        }
    }

    async fn step(&mut self) {
        let admin = Actor::user(Uuid::new_v4(), vec![Role::TenantAdmin]);
        let n = self.next(100);
        if self.accounts.len() < 5 || n < 10 {
            self.open_account(&admin).await;
        } else if self.users.len() < 3 || n < 20 {
            self.register_user().await;
        } else if self.quotes.len() < 3 || n < 35 {
            self.draft_quote(&admin).await;
        } else if n < 55 {
            self.change_account(&admin).await;
        } else if n < 65 {
            self.change_user().await;
        } else {
            self.change_quote(&admin).await;
        }
    }

    async fn open_account(&mut self, admin: &Actor) {
        let id = Uuid::new_v4();
        let body = aggregates::account::AccountCommand::OpenAccount {
            name: format!("Account {}", self.accounts.len()),
            legal_name: "Legal GmbH".into(),
            country: "de".into(),
            billing_email: "billing@example.test".into(),
            currency: "EUR".into(),
            tier: aggregates::account::Tier::Standard,
        };
        let command = Command::new(self.tenant_id, admin.clone(), Utc::now(), body);
        let meta = self.metadata(admin);
        if self
            .bus
            .store::<Account>()
            .execute(&id.to_string(), command, None, &meta)
            .await
            .is_ok()
        {
            self.accounts.push(id);
        }
    }

    async fn change_account(&mut self, admin: &Actor) {
        let pick = self.next(self.accounts.len());
        let id = self.accounts[pick];
        let body = match self.next(4) {
            0 => AccountCommand::UpdateAccountDetails {
                name: Some(format!("Renamed {}", self.next(1000))),
                legal_name: None,
                country: None,
                billing_email: None,
            },
            1 => AccountCommand::SetApiQuota {
                requests_per_minute: self.next(1000) as u32 + 1,
            },
            2 => AccountCommand::ChangeTier {
                tier: [
                    aggregates::account::Tier::Standard,
                    aggregates::account::Tier::Gold,
                ][self.next(2)],
            },
            _ => AccountCommand::SetCreditLimit {
                amount: Decimal::from(self.next(100_000)),
            },
        };
        let command = Command::new(self.tenant_id, admin.clone(), Utc::now(), body);
        let meta = self.metadata(admin);
        let _ = self
            .bus
            .store::<Account>()
            .execute(&id.to_string(), command, None, &meta)
            .await;
    }

    async fn register_user(&mut self) {
        let (id, system) = (Uuid::new_v4(), Actor::system("test"));
        let body = UserCommand::RegisterUser {
            user_id: id,
            email: format!("{}@example.test", id.simple()),
            display_name: "Someone".into(),
            roles: vec![Role::Operator],
            account_id: None,
        };
        let command = Command::new(self.tenant_id, system.clone(), Utc::now(), body);
        let meta = self.metadata(&system);
        if self
            .bus
            .store::<User>()
            .execute(&id.to_string(), command, None, &meta)
            .await
            .is_ok()
        {
            self.users.push(id);
        }
    }

    async fn change_user(&mut self) {
        let pick = self.next(self.users.len());
        let id = self.users[pick];
        let system = Actor::system("test");
        let body = match self.next(3) {
            0 => UserCommand::ChangeRoles {
                roles: vec![[Role::Operator, Role::Viewer][self.next(2)]],
                account_id: None,
            },
            1 => UserCommand::SetApprovalLimit {
                amount: Decimal::from(self.next(50_000) + 1),
                currency: "EUR".into(),
            },
            _ => UserCommand::ChangeEmail {
                email: format!("{}@example.test", Uuid::new_v4().simple()),
            },
        };
        let command = Command::new(self.tenant_id, system.clone(), Utc::now(), body);
        let meta = self.metadata(&system);
        let _ = self
            .bus
            .store::<User>()
            .execute(&id.to_string(), command, None, &meta)
            .await;
    }

    async fn draft_quote(&mut self, admin: &Actor) {
        let id = Uuid::new_v4();
        let pick = self.next(self.accounts.len());
        let account_id = self.accounts[pick];
        let body = QuoteCommand::DraftQuote {
            account_id,
            title: "Quote".into(),
            valid_until: Utc::now() + Duration::days(30),
        };
        if self.quote(id, admin, body).await {
            self.quotes.push((id, Vec::new()));
        }
    }

    async fn change_quote(&mut self, admin: &Actor) {
        let which = self.next(self.quotes.len());
        let id = self.quotes[which].0;
        let lines = self.quotes[which].1.clone();
        let body = match self.next(5) {
            0 | 1 => {
                let line_id = Uuid::new_v4();
                let added = QuoteCommand::AddLineItem {
                    line_id,
                    sku: format!("SKU-{}", self.next(50)),
                    description: "item".into(),
                    quantity: Decimal::from(self.next(20) + 1),
                    unit: [Unit::Piece, Unit::Hour, Unit::Seat][self.next(3)],
                    unit_price: Decimal::new(self.next(100_000) as i64 + 1, 2),
                };
                if self.quote(id, admin, added).await {
                    self.quotes[which].1.push(line_id);
                }
                return;
            }
            2 if !lines.is_empty() => QuoteCommand::ChangeLineItem {
                line_id: lines[self.next(lines.len())],
                quantity: Some(Decimal::from(self.next(30) + 1)),
                unit_price: None,
                description: None,
            },
            3 if !lines.is_empty() => {
                let line_id = lines[self.next(lines.len())];
                if self
                    .quote(id, admin, QuoteCommand::RemoveLineItem { line_id })
                    .await
                {
                    self.quotes[which].1.retain(|l| *l != line_id);
                }
                return;
            }
            _ => QuoteCommand::SetQuoteDiscount {
                percent: Decimal::from(self.next(10)),
                reason: "loyal".into(),
            },
        };
        self.quote(id, admin, body).await;
    }

    async fn quote(&self, id: Uuid, actor: &Actor, body: QuoteCommand) -> bool {
        let command = Command::new(self.tenant_id, actor.clone(), Utc::now(), body);
        let meta = self.metadata(actor);
        self.bus
            .store::<Quote>()
            .execute(&id.to_string(), command, None, &meta)
            .await
            .is_ok()
    }
}

/// Keeps reading the read tables as the services do (in `b2b_app`, tenant set) until told to
/// stop; returns how many reads succeeded, failing on the first that does not.
fn keep_querying(
    pool: PgPool,
    tenant: Uuid,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<u64> {
    tokio::spawn(async move {
        let done = AtomicU64::new(0);
        while !stop.load(Ordering::Relaxed) {
            for table in [
                "accounts",
                "users",
                "quotes",
                "quote_lines",
                "approvals",
                "contracts",
            ] {
                let mut tx = pool.begin().await.expect("begin");
                sqlx::query("select set_config('app.tenant_id', $1, true)")
                    .bind(tenant.to_string())
                    .execute(&mut *tx)
                    .await
                    .expect("set tenant");
                let sql = format!("select count(*) from read.{table}");
                let count: Result<i64, _> = sqlx::query_scalar(&sql).fetch_one(&mut *tx).await;
                count.unwrap_or_else(|e| {
                    panic!("reading read.{table} failed during a rebuild: {e}")
                });
                tx.commit().await.expect("commit");
                done.fetch_add(1, Ordering::Relaxed);
            }
        }
        done.load(Ordering::Relaxed)
    })
}

/// Every stream's newest event applied by every read model.
async fn caught_up(stack: &TestStack) {
    eventually("read models to catch up", || async {
        let behind: i64 = sqlx::query_scalar(
            "select count(*) from (select aggregate_type, aggregate_id, max(sequence) s \
             from events group by 1, 2) h \
             where not exists (select 1 from projection_checkpoints c \
               where c.aggregate_type = h.aggregate_type and c.aggregate_id = h.aggregate_id \
               and c.last_sequence = h.s)",
        )
        .fetch_one(&stack.admin)
        .await
        .expect("lag");
        (behind == 0).then_some(())
    })
    .await;
}

/// An independent from-scratch replay: every event, in commit order, straight through each
/// projection's `apply` into `scratch.*` (no checkpoints, batches or swap involved).
async fn replay_into_scratch(stack: &TestStack) {
    // The replay reads in commit order under the xmin rule, which is cluster-wide: while any
    // transaction of the cluster (another test's, say) is older than the newest events, it
    // would not see them yet, and the read models would look ahead of it.
    eventually("every event to be behind the xmin horizon", || async {
        let held_back: bool = sqlx::query_scalar(
            "select exists (select 1 from events \
                            where tx_id >= pg_snapshot_xmin(pg_current_snapshot()))",
        )
        .fetch_one(&stack.admin)
        .await
        .expect("horizon");
        (!held_back).then_some(())
    })
    .await;
    let mut tx = stack.admin.begin().await.unwrap();
    sqlx::raw_sql("drop schema if exists scratch cascade; create schema scratch")
        .execute(&mut *tx)
        .await
        .unwrap();
    let models = projections::read_models();
    for table in models.iter().flat_map(|p| p.tables()) {
        sqlx::raw_sql(&format!(
            "create table scratch.{table} (like read.{table} including all)"
        ))
        .execute(&mut *tx)
        .await
        .unwrap();
    }
    sqlx::raw_sql("set local search_path = scratch, public")
        .execute(&mut *tx)
        .await
        .unwrap();
    let events = committed_after(&mut *tx, CommitPosition::default(), None, i64::MAX)
        .await
        .unwrap();
    for (_, event) in &events {
        for projection in models.iter().filter(|p| p.handles(&event.aggregate_type)) {
            projection
                .apply(&mut tx, event)
                .await
                .expect("replay applies");
        }
    }
    tx.commit().await.unwrap();
}

/// Rows of `tenant` in `read.table` and in `scratch.table` that the other lacks.
async fn differing_tenant_rows(stack: &TestStack, table: &str, tenant: Uuid) -> i64 {
    sqlx::query_scalar(&format!(
        "select count(*) from ((select * from read.{table} where tenant_id = $1 except all \
                                select * from scratch.{table} where tenant_id = $1) union all \
                               (select * from scratch.{table} where tenant_id = $1 except all \
                                select * from read.{table} where tenant_id = $1)) d"
    ))
    .bind(tenant)
    .fetch_one(&stack.admin)
    .await
    .unwrap()
}

async fn differing_rows(stack: &TestStack, table: &str) -> (i64, i64) {
    sqlx::query_as(&format!(
        "select (select count(*) from read.{table}), \
                (select count(*) from ((select * from read.{table} except all \
                                        select * from scratch.{table}) union all \
                                       (select * from scratch.{table} except all \
                                        select * from read.{table})) d)"
    ))
    .fetch_one(&stack.admin)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebuilt_read_models_equal_a_fresh_replay_and_queries_answer_throughout() {
    let mut stack = TestStack::new(2).await;
    stack.declare().await;
    stack.start_relay();
    stack.start_projector();
    let mut mix = Mix::new(&stack, 0x9E37_79B9_7F4A_7C15).await;
    for _ in 0..2000 {
        mix.step().await;
    }

    let stop = Arc::new(AtomicBool::new(false));
    let queries = keep_querying(stack.pool.clone(), stack.tenant_id, stop.clone());
    let writing = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut steps = 0;
            while !stop.load(Ordering::Relaxed) || steps < 300 {
                mix.step().await;
                steps += 1;
            }
            steps
        })
    };
    for name in READ_MODEL_NAMES {
        let projection = projections::read_model(name).expect("a read model");
        let report = projections::rebuild(
            &stack.admin,
            projection.as_ref(),
            RebuildScope::All,
            500,
            &|_| {},
        )
        .await
        .unwrap_or_else(|e| panic!("rebuild of {name} failed: {e}"));
        println!("{report:?}");
    }
    stop.store(true, Ordering::Relaxed);
    let written_during = writing.await.unwrap();
    let reads = queries.await.expect("every query answered");
    assert!(
        reads > 0 && written_during >= 300,
        "{reads} reads, {written_during} commands"
    );

    caught_up(&stack).await;
    replay_into_scratch(&stack).await;
    for table in projections::read_models().iter().flat_map(|p| p.tables()) {
        let (rows, differing) = differing_rows(&stack, table).await;
        assert_eq!(differing, 0, "read.{table} differs from a fresh replay");
        if ["accounts", "users", "quotes", "quote_lines"].contains(table) {
            assert!(rows > 0, "read.{table} has rows");
        }
    }
    stack.tear_down().await;
}

/// A rebuild stopped half-way (its task dropped mid-batch, as a killed process would leave it)
/// resumes where its last batch committed when started again, and ends equal to a fresh
/// replay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_stopped_half_way_resumes_and_ends_equal_to_a_fresh_replay() {
    let mut stack = TestStack::new(2).await;
    stack.declare().await;
    stack.start_relay();
    stack.start_projector();
    let mut mix = Mix::new(&stack, 0x005E_ED0F_1234).await;
    for _ in 0..1500 {
        mix.step().await;
    }
    caught_up(&stack).await;
    let projection = projections::read_model("quotes").expect("a read model");
    let (reached, mut heard) = tokio::sync::mpsc::unbounded_channel();
    let report = |p: &projections::RebuildProgress| {
        let _ = reached.send(p.replayed);
    };
    // Stop it (drop it mid-flight) after its third batch committed.
    tokio::select! {
        done = projections::rebuild(&stack.admin, projection.as_ref(), RebuildScope::All, 200, &report) => {
            panic!("the rebuild was to be stopped, but it ended: {done:?}")
        }
        _ = async { for _ in 0..3 { heard.recv().await; } } => {}
    }
    let recorded: i64 = sqlx::query_scalar("select replayed from rebuild_quotes.rebuild_progress")
        .fetch_one(&stack.admin)
        .await
        .expect("the stopped rebuild left its progress");
    assert!(recorded >= 600, "{recorded}");

    let resumed_at = std::sync::Mutex::new(None);
    let report = projections::rebuild(
        &stack.admin,
        projection.as_ref(),
        RebuildScope::All,
        200,
        &|p| {
            resumed_at.lock().unwrap().get_or_insert(p.replayed);
        },
    )
    .await
    .expect("the rebuild resumes and finishes");
    let first_batch = resumed_at.into_inner().unwrap().expect("progress reported");
    assert!(
        first_batch > recorded,
        "resumed after {recorded}, not from the start"
    );
    let stored: i64 = sqlx::query_scalar("select count(*) from events")
        .fetch_one(&stack.admin)
        .await
        .unwrap();
    assert!((report.replayed as i64) < stored, "{report:?}");

    caught_up(&stack).await;
    replay_into_scratch(&stack).await;
    for table in projection.tables() {
        let (rows, differing) = differing_rows(&stack, table).await;
        assert_eq!(differing, 0, "read.{table} differs from a fresh replay");
        assert!(rows > 0, "read.{table} has rows");
    }
    stack.tear_down().await;
}

/// Both tenants' quote rows damaged; rebuilding one tenant (while it keeps writing) restores
/// exactly its rows and checkpoints, and leaves the other's rows and checkpoints as they were.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_rebuild_restores_that_tenant_alone() {
    let mut stack = TestStack::new(2).await;
    stack.declare().await;
    stack.start_relay();
    stack.start_projector();
    let mut ours = Mix::new(&stack, 0x7E4A_47C1).await;
    let mut theirs = Mix::of_tenant(&stack, Uuid::new_v4(), 0x0BAD_5EED).await;
    let other = theirs.tenant_id;
    for _ in 0..600 {
        ours.step().await;
        theirs.step().await;
    }
    caught_up(&stack).await;
    // Damage the rows of both tenants
    // (as a buggy projection would have), in columns later events overwrite without checking.
    sqlx::raw_sql(
        "update read.quote_lines set description = 'damaged'; \
         update read.quotes set version = version + 100",
    )
    .execute(&stack.admin)
    .await
    .unwrap();
    let their_checkpoints = |stack: &TestStack| {
        let admin = stack.admin.clone();
        async move {
            let rows: Vec<(String, i64)> = sqlx::query_as(
                "select c.aggregate_id, c.last_sequence from projection_checkpoints c \
                 join events e on e.aggregate_type = c.aggregate_type \
                   and e.aggregate_id = c.aggregate_id and e.sequence = 1 \
                 where c.projection = 'quotes' and e.tenant_id = $1 order by 1",
            )
            .bind(other)
            .fetch_all(&admin)
            .await
            .unwrap();
            rows
        }
    };
    let theirs_before = their_checkpoints(&stack).await;
    assert!(!theirs_before.is_empty());

    let writing = tokio::spawn(async move {
        for _ in 0..200 {
            ours.step().await;
        }
    });
    let projection = projections::read_model("quotes").expect("a read model");
    let scope = RebuildScope::Tenant(stack.tenant_id);
    let report = projections::rebuild(&stack.admin, projection.as_ref(), scope, 100, &|_| {})
        .await
        .expect("the tenant's rebuild finishes");
    writing.await.unwrap();
    assert!(report.replayed > 0, "{report:?}");

    caught_up(&stack).await;
    replay_into_scratch(&stack).await;
    for table in projection.tables() {
        let differing = differing_tenant_rows(&stack, table, stack.tenant_id).await;
        assert_eq!(differing, 0, "our read.{table} differs from a fresh replay");
    }
    let (their_lines, damaged): (i64, i64) = sqlx::query_as(
        "select count(*), count(*) filter (where description = 'damaged') \
         from read.quote_lines where tenant_id = $1",
    )
    .bind(other)
    .fetch_one(&stack.admin)
    .await
    .unwrap();
    assert!(their_lines > 0);
    assert_eq!(
        damaged, their_lines,
        "the other tenant's rows were left alone"
    );
    assert!(
        differing_tenant_rows(&stack, "quotes", other).await > 0,
        "the other tenant's quotes were left alone"
    );
    assert_eq!(their_checkpoints(&stack).await, theirs_before);
    let leftovers: i64 =
        sqlx::query_scalar("select count(*) from pg_namespace where nspname like 'rebuild_%'")
            .fetch_one(&stack.admin)
            .await
            .unwrap();
    assert_eq!(leftovers, 0, "the rebuild schema is dropped");
    stack.tear_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_message_is_reported_replayed_and_dropped() {
    let mut stack = TestStack::new(1).await;
    stack.declare().await;
    let accounts = stack.accounts();
    let id = Uuid::new_v4();
    accounts.open(id, "Parked Ltd").await;
    let events = stack.events(id).await;
    // A read model that refuses the event: the account's row cannot be written while the
    // column is too short, so the delivery fails until the limit parks it.
    sqlx::raw_sql("alter table read.accounts add constraint short_name check (length(name) < 3)")
        .execute(&stack.admin)
        .await
        .unwrap();
    stack.publish(&events).await;
    stack.start_projector();
    eventually("the event to be parked", || async {
        (stack.parked().await == 1).then_some(())
    })
    .await;

    let status = projections::status(
        &stack.admin,
        &stack.amqp_url,
        &stack.topology,
        &[(READ_MODELS, projections::read_models())],
    )
    .await
    .expect("status");
    assert_eq!(status.groups[0].parked, 1);
    let accounts_lag = status
        .projections
        .iter()
        .find(|p| p.projection == "accounts")
        .unwrap();
    assert_eq!(
        (accounts_lag.streams_behind, accounts_lag.events_behind),
        (1, 1)
    );

    // Fixed: the replay applies it.
    sqlx::raw_sql("alter table read.accounts drop constraint short_name")
        .execute(&stack.admin)
        .await
        .unwrap();
    let replayed = projections::handle_parked(
        &stack.amqp_url,
        &stack.topology,
        READ_MODELS,
        ParkedAction::Replay,
        None,
    )
    .await
    .expect("replay");
    // The support helper publishes without a message id; the relay sets one.
    assert_eq!(replayed.len(), 1);
    let row = stack.projected(id, 1).await;
    assert_eq!(row.name, "Parked Ltd");
    assert_eq!(stack.parked().await, 0);

    // A message that can never apply (not an event at all) is parked at once, then dropped.
    stack
        .publish_raw(&[(
            b"not an event".to_vec(),
            "Account.Nothing".into(),
            id.to_string(),
        )])
        .await;
    eventually("the garbage to be parked", || async {
        (stack.parked().await == 1).then_some(())
    })
    .await;
    let dropped = projections::handle_parked(
        &stack.amqp_url,
        &stack.topology,
        READ_MODELS,
        ParkedAction::Drop,
        Some(5),
    )
    .await
    .expect("drop");
    assert_eq!(dropped.len(), 1);
    assert_eq!(stack.parked().await, 0);
    stack.tear_down().await;
}
