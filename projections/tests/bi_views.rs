//! The BI views of `migrations/0010_bi_views.sql` and the BI login design, against real
//! Postgres: each view answers its question for one tenant, and a login in `b2b_bi` pinned to
//! tenant A (a row in `read.bi_logins`) reads A's rows only, whatever `app.tenant_id` it sets,
//! and can write nothing. Read-model rows are inserted directly as the superuser.
//! Needs `deploy/local/stack.sh up` and `source deploy/local/env.sh`.
use std::panic::AssertUnwindSafe;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, Utc};
use futures::FutureExt;
use rust_decimal::Decimal;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, Executor, PgConnection, PgPool, Row};
use test_support::TestDatabase;
use uuid::Uuid;

/// Every table and view in schema `read` that carries tenant rows.
const READ_RELATIONS: [&str; 13] = [
    "accounts",
    "users",
    "quotes",
    "quote_lines",
    "approvals",
    "approval_levels",
    "contracts",
    "contract_versions",
    "quotes_by_status_month",
    "pipeline_value",
    "approval_cycle_times",
    "sla_breaches",
    "renewals_due",
];

const READ_TABLES: [&str; 9] = [
    "accounts",
    "users",
    "quotes",
    "quote_lines",
    "approvals",
    "approval_levels",
    "contracts",
    "contract_versions",
    "bi_logins",
];

/// Tables outside `read` that BI must not touch at all.
const PRIVATE_TABLES: [&str; 11] = [
    "events",
    "relay_state",
    "snapshots",
    "tenants",
    "user_credentials",
    "sessions",
    "idempotency_keys",
    "tenant_policies",
    "scheduled_commands",
    "projection_checkpoints",
    "test_clock",
];

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: run `source deploy/local/env.sh` (stack: deploy/local/stack.sh up)"
        )
    })
}

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).expect("a decimal")
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("an RFC 3339 time")
        .with_timezone(&Utc)
}

fn month(y: i32, m: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, 1).expect("a date")
}

/// A fresh, migrated database; `admin` is the superuser login (reads past row-level security).
struct Db {
    admin: PgPool,
    database: TestDatabase,
}

impl Db {
    async fn new() -> Self {
        let database = TestDatabase::migrated("bi_views_test").await;
        let admin = PgPoolOptions::new()
            .max_connections(2)
            .connect(&database.url)
            .await
            .expect("connect as admin");
        Self { admin, database }
    }

    async fn exec(&self, sql: &str) {
        sqlx::query(sql)
            .execute(&self.admin)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

/// Ids of what the fixture inserts.
struct Fixture {
    a: Uuid,
    b: Uuid,
    account_a1: Uuid,
    account_a2: Uuid,
    approval_granted: Uuid,
    approval_rejected: Uuid,
    approval_pending: Uuid,
    contract_10: Uuid,
    contract_90: Uuid,
}

async fn account(db: &Db, tenant: Uuid, name: &str) -> Uuid {
    let id = Uuid::new_v4();
    sqlx::query(
        "insert into read.accounts (id, tenant_id, name, legal_name, country, billing_email, \
             currency, tier, status, version, opened_at, updated_at) \
         values ($1, $2, $3, $3, 'de', 'billing@example.com', 'EUR', 'Standard', 'Active', 1, \
             now(), now())",
    )
    .bind(id)
    .bind(tenant)
    .bind(name)
    .execute(&db.admin)
    .await
    .expect("insert account");
    id
}

struct QuoteRow<'a> {
    tenant: Uuid,
    account: Uuid,
    status: &'a str,
    currency: &'a str,
    total: &'a str,
    created_at: &'a str,
    valid_until: &'a str,
}

async fn quote(db: &Db, q: QuoteRow<'_>) -> Uuid {
    let id = Uuid::new_v4();
    sqlx::query(
        "insert into read.quotes (id, tenant_id, account_id, title, currency, tier, status, \
             valid_until, subtotal, line_discounts, quote_discount, total, discount_percent, \
             version, created_at, updated_at) \
         values ($1, $2, $3, 'Quote', $4, 'Standard', $5, $6, $7, 0, 0, $7, 0, 1, $8, $8)",
    )
    .bind(id)
    .bind(q.tenant)
    .bind(q.account)
    .bind(q.currency)
    .bind(q.status)
    .bind(at(q.valid_until))
    .bind(dec(q.total))
    .bind(at(q.created_at))
    .execute(&db.admin)
    .await
    .expect("insert quote");
    sqlx::query(
        "insert into read.quote_lines (quote_id, line_id, tenant_id, position, sku, description, \
             quantity, unit_price, volume_discount_percent, line_total) \
         values ($1, $2, $3, 1, 'SKU-1', 'Line', 1, $4, 0, $4)",
    )
    .bind(id)
    .bind(Uuid::new_v4())
    .bind(q.tenant)
    .bind(dec(q.total))
    .execute(&db.admin)
    .await
    .expect("insert quote line");
    id
}

struct ApprovalRow<'a> {
    tenant: Uuid,
    status: &'a str,
    current_level: Option<i32>,
    requested_at: &'a str,
    decided_at: Option<&'a str>,
    /// (role, due_at, approved_at, breached_at) per level, from 1.
    levels: &'a [(&'a str, &'a str, Option<&'a str>, Option<&'a str>)],
}

async fn approval(db: &Db, a: ApprovalRow<'_>) -> Uuid {
    let id = Uuid::new_v4();
    sqlx::query(
        "insert into read.approvals (id, tenant_id, subject_type, subject_id, subject_version, \
             amount, currency, requester_id, status, current_level, level_count, requested_at, \
             decided_at, version, updated_at) \
         values ($1, $2, 'Quote', $3, 2, 25000, 'EUR', $4, $5, $6, $7, $8, $9, 3, now())",
    )
    .bind(id)
    .bind(a.tenant)
    .bind(Uuid::new_v4())
    .bind(Uuid::new_v4())
    .bind(a.status)
    .bind(a.current_level)
    .bind(a.levels.len() as i32)
    .bind(at(a.requested_at))
    .bind(a.decided_at.map(at))
    .execute(&db.admin)
    .await
    .expect("insert approval");
    for (number, (role, due_at, approved_at, breached_at)) in (1..).zip(a.levels) {
        sqlx::query(
            "insert into read.approval_levels (approval_id, level, tenant_id, role, due_at, \
                 approved_by, approved_at, escalated, breached_at) \
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(id)
        .bind(number)
        .bind(a.tenant)
        .bind(*role)
        .bind(at(due_at))
        .bind(approved_at.map(|_| Uuid::new_v4()))
        .bind(approved_at.map(at))
        .bind(breached_at.is_some())
        .bind(breached_at.map(at))
        .execute(&db.admin)
        .await
        .expect("insert approval level");
    }
    id
}

/// A contract whose end date is `ends_in` days from the database's today.
async fn contract(db: &Db, tenant: Uuid, account: Uuid, status: &str, ends_in: i32) -> Uuid {
    let id = Uuid::new_v4();
    sqlx::query(
        "insert into read.contracts (id, tenant_id, account_id, title, status, value, currency, \
             start_date, end_date, terms, version, term, created_at, updated_at, stream_version) \
         values ($1, $2, $3, 'Support', $4, 12000, 'EUR', current_date - 300, \
             current_date + $5, 'Terms', 1, 2, now(), now(), 5)",
    )
    .bind(id)
    .bind(tenant)
    .bind(account)
    .bind(status)
    .bind(ends_in)
    .execute(&db.admin)
    .await
    .expect("insert contract");
    sqlx::query(
        "insert into read.contract_versions (contract_id, version, tenant_id, terms, value, \
             amended_at) values ($1, 1, $2, 'Terms', 12000, now())",
    )
    .bind(id)
    .bind(tenant)
    .execute(&db.admin)
    .await
    .expect("insert contract version");
    id
}

/// Two tenants' read models. Tenant B has a row of every kind, so any leak shows.
async fn fixture(db: &Db) -> Fixture {
    let a = Uuid::new_v4();
    let b = Uuid::new_v4();
    for (tenant, slug) in [(a, "a"), (b, "b")] {
        sqlx::query("insert into tenants (id, slug, name) values ($1, $2, $2)")
            .bind(tenant)
            .bind(format!("bi-{slug}-{}", tenant.simple()))
            .execute(&db.admin)
            .await
            .expect("insert tenant");
        sqlx::query(
            "insert into read.users (id, tenant_id, email, display_name, roles, active, version, \
                 registered_at, updated_at) \
             values ($1, $2, 'm@example.com', 'M', '{Manager}', true, 1, now(), now())",
        )
        .bind(Uuid::new_v4())
        .bind(tenant)
        .execute(&db.admin)
        .await
        .expect("insert user");
    }
    let account_a1 = account(db, a, "Alpha").await;
    let account_a2 = account(db, a, "Beta").await;
    let account_b1 = account(db, b, "Other tenant's").await;

    let valid = "2030-01-01T00:00:00Z";
    let quotes_a = [
        (account_a1, "Draft", "EUR", "100.00", "2024-01-10T12:00:00Z"),
        // 23:30 UTC on 31 January: January, even where it is already February.
        (account_a1, "Draft", "EUR", "50.50", "2024-01-31T23:30:00Z"),
        (account_a2, "Sent", "EUR", "1000.00", "2024-01-25T08:00:00Z"),
        (
            account_a2,
            "Accepted",
            "EUR",
            "2000.00",
            "2024-02-03T08:00:00Z",
        ),
        (
            account_a1,
            "PendingApproval",
            "USD",
            "300.00",
            "2024-02-28T08:00:00Z",
        ),
        (
            account_a1,
            "Expired",
            "EUR",
            "10.00",
            "2024-02-01T08:00:00Z",
        ),
        (
            account_a2,
            "Approved",
            "EUR",
            "700.00",
            "2024-03-01T08:00:00Z",
        ),
    ];
    for (account, status, currency, total, created_at) in quotes_a {
        let row = QuoteRow {
            tenant: a,
            account,
            status,
            currency,
            total,
            created_at,
            valid_until: valid,
        };
        quote(db, row).await;
    }
    for status in ["Draft", "Sent", "Accepted"] {
        let row = QuoteRow {
            tenant: b,
            account: account_b1,
            status,
            currency: "EUR",
            total: "999.00",
            created_at: "2024-01-15T08:00:00Z",
            valid_until: valid,
        };
        quote(db, row).await;
    }

    // Requested 10:00, level 1 overdue at 18:00 and escalated, granted 26.5 hours after the
    // request.
    let approval_granted = approval(
        db,
        ApprovalRow {
            tenant: a,
            status: "Approved",
            current_level: None,
            requested_at: "2024-01-10T10:00:00Z",
            decided_at: Some("2024-01-11T12:30:00Z"),
            levels: &[
                (
                    "TenantAdmin",
                    "2024-01-11T18:00:00Z",
                    Some("2024-01-11T09:00:00Z"),
                    Some("2024-01-10T18:00:00Z"),
                ),
                (
                    "TenantAdmin",
                    "2024-01-12T09:00:00Z",
                    Some("2024-01-11T12:30:00Z"),
                    None,
                ),
            ],
        },
    )
    .await;
    let approval_rejected = approval(
        db,
        ApprovalRow {
            tenant: a,
            status: "Rejected",
            current_level: None,
            requested_at: "2024-02-01T09:00:00Z",
            decided_at: Some("2024-02-01T09:15:00Z"),
            levels: &[("Manager", "2024-02-02T09:00:00Z", None, None)],
        },
    )
    .await;
    let approval_pending = approval(
        db,
        ApprovalRow {
            tenant: a,
            status: "Pending",
            current_level: Some(1),
            requested_at: "2024-03-01T09:00:00Z",
            decided_at: None,
            levels: &[(
                "TenantAdmin",
                "2024-03-03T09:00:00Z",
                None,
                Some("2024-03-02T09:00:00Z"),
            )],
        },
    )
    .await;
    approval(
        db,
        ApprovalRow {
            tenant: b,
            status: "Approved",
            current_level: None,
            requested_at: "2024-01-01T09:00:00Z",
            decided_at: Some("2024-01-05T09:00:00Z"),
            levels: &[(
                "TenantAdmin",
                "2024-01-04T09:00:00Z",
                Some("2024-01-05T09:00:00Z"),
                Some("2024-01-02T09:00:00Z"),
            )],
        },
    )
    .await;

    let contract_10 = contract(db, a, account_a1, "Active", 10).await;
    let contract_90 = contract(db, a, account_a2, "Active", 90).await;
    contract(db, a, account_a1, "Active", 91).await;
    contract(db, a, account_a1, "Active", -1).await;
    contract(db, a, account_a1, "Draft", 5).await;
    contract(db, a, account_a1, "Terminated", 20).await;
    contract(db, b, account_b1, "Active", 30).await;

    Fixture {
        a,
        b,
        account_a1,
        account_a2,
        approval_granted,
        approval_rejected,
        approval_pending,
        contract_10,
        contract_90,
    }
}

#[tokio::test]
async fn views_answer_the_bi_questions_per_tenant() {
    let db = Db::new().await;
    let f = fixture(&db).await;
    let mut conn = db.admin.acquire().await.expect("a connection");
    // Months are UTC months whatever the session's time zone.
    conn.execute("set timezone = 'Pacific/Auckland'")
        .await
        .expect("set time zone");

    let by_month: Vec<(NaiveDate, String, String, i64, Decimal)> = sqlx::query_as(
        "select month, status, currency, quote_count, total_value \
         from read.quotes_by_status_month where tenant_id = $1 order by month, status",
    )
    .bind(f.a)
    .fetch_all(&mut *conn)
    .await
    .expect("quotes by status and month");
    let expected = vec![
        (month(2024, 1), "Draft", "EUR", 2, dec("150.50")),
        (month(2024, 1), "Sent", "EUR", 1, dec("1000")),
        (month(2024, 2), "Accepted", "EUR", 1, dec("2000")),
        (month(2024, 2), "Expired", "EUR", 1, dec("10")),
        (month(2024, 2), "PendingApproval", "USD", 1, dec("300")),
        (month(2024, 3), "Approved", "EUR", 1, dec("700")),
    ];
    let expected: Vec<_> = expected
        .into_iter()
        .map(|(m, s, c, n, v)| (m, s.to_owned(), c.to_owned(), n, v))
        .collect();
    assert_eq!(by_month, expected);

    let pipeline: Vec<(String, String, Uuid, Option<String>, i64, Decimal)> = sqlx::query_as(
        "select status, currency, account_id, account_name, quote_count, total_value \
         from read.pipeline_value where tenant_id = $1 order by status",
    )
    .bind(f.a)
    .fetch_all(&mut *conn)
    .await
    .expect("pipeline value");
    let alpha = Some("Alpha".to_owned());
    let beta = Some("Beta".to_owned());
    assert_eq!(
        pipeline,
        vec![
            (
                "Approved".into(),
                "EUR".into(),
                f.account_a2,
                beta.clone(),
                1,
                dec("700")
            ),
            (
                "Draft".into(),
                "EUR".into(),
                f.account_a1,
                alpha.clone(),
                2,
                dec("150.50")
            ),
            (
                "PendingApproval".into(),
                "USD".into(),
                f.account_a1,
                alpha,
                1,
                dec("300")
            ),
            (
                "Sent".into(),
                "EUR".into(),
                f.account_a2,
                beta,
                1,
                dec("1000")
            ),
        ]
    );

    let cycles = sqlx::query(
        "select approval_id, status, cycle_time::text as cycle_time, cycle_seconds, levels, \
             levels_approved, escalations \
         from read.approval_cycle_times where tenant_id = $1 order by requested_at",
    )
    .bind(f.a)
    .fetch_all(&mut *conn)
    .await
    .expect("approval cycle times");
    let cycles: Vec<(Uuid, String, String, Decimal, i32, i32, i32)> = cycles
        .iter()
        .map(|r| {
            (
                r.get("approval_id"),
                r.get("status"),
                r.get("cycle_time"),
                r.get("cycle_seconds"),
                r.get("levels"),
                r.get("levels_approved"),
                r.get("escalations"),
            )
        })
        .collect();
    assert_eq!(
        cycles,
        vec![
            (
                f.approval_granted,
                "Approved".into(),
                "1 day 02:30:00".into(),
                dec("95400"),
                2,
                2,
                1
            ),
            (
                f.approval_rejected,
                "Rejected".into(),
                "00:15:00".into(),
                dec("900"),
                1,
                0,
                0
            ),
        ],
        "one row per decided approval; the pending one is not there"
    );

    let breaches: Vec<Breach> = sqlx::query_as(
        "select approval_id, level, role, due_at, breached_at, approval_status, still_open \
             from read.sla_breaches where tenant_id = $1 order by breached_at",
    )
    .bind(f.a)
    .fetch_all(&mut *conn)
    .await
    .expect("SLA breaches");
    assert_eq!(
        breaches,
        vec![
            (
                f.approval_granted,
                1,
                "TenantAdmin".into(),
                at("2024-01-11T18:00:00Z"),
                at("2024-01-10T18:00:00Z"),
                "Approved".into(),
                false
            ),
            (
                f.approval_pending,
                1,
                "TenantAdmin".into(),
                at("2024-03-03T09:00:00Z"),
                at("2024-03-02T09:00:00Z"),
                "Pending".into(),
                true
            ),
        ],
        "one row per escalated level, none for levels that kept their SLA"
    );

    conn.execute("reset timezone").await.expect("reset");
    let renewals: Vec<(Uuid, Option<String>, i32)> = sqlx::query_as(
        "select contract_id, account_name, days_left from read.renewals_due \
         where tenant_id = $1 order by days_left",
    )
    .bind(f.a)
    .fetch_all(&mut *conn)
    .await
    .expect("renewals due");
    assert_eq!(
        renewals,
        vec![
            (f.contract_10, Some("Alpha".into()), 10),
            (f.contract_90, Some("Beta".into()), 90),
        ],
        "active contracts ending today..+90 days; not +91, not past, not drafts or terminated"
    );

    let b_rows: i64 = sqlx::query_scalar(
        "select (select count(*) from read.quotes_by_status_month where tenant_id = $1) \
              + (select count(*) from read.pipeline_value where tenant_id = $1) \
              + (select count(*) from read.approval_cycle_times where tenant_id = $1) \
              + (select count(*) from read.sla_breaches where tenant_id = $1) \
              + (select count(*) from read.renewals_due where tenant_id = $1)",
    )
    .bind(f.b)
    .fetch_one(&mut *conn)
    .await
    .expect("tenant B's rows");
    assert_eq!(b_rows, 3 + 2 + 1 + 1 + 1, "tenant B has its own answers");
}

/// A row of `read.sla_breaches`: approval, level, role, due at, breached at, approval status,
/// still open.
type Breach = (
    Uuid,
    i32,
    String,
    DateTime<Utc>,
    DateTime<Utc>,
    String,
    bool,
);

/// SQLSTATE of a refused statement; panics if it was not refused.
fn refused(result: Result<sqlx::postgres::PgQueryResult, sqlx::Error>, sql: &str) -> String {
    match result {
        Ok(_) => panic!("{sql}: allowed, should be refused"),
        Err(e) => e
            .as_database_error()
            .and_then(|d| d.code())
            .map(|c| c.into_owned())
            .unwrap_or_else(|| panic!("{sql}: not a database error: {e}")),
    }
}

/// Rows of every read table and view as the connection sees them: (relation, all rows, rows
/// of `tenant`).
async fn visible(conn: &mut PgConnection, tenant: Uuid) -> Vec<(String, i64, i64)> {
    let mut counts = Vec::new();
    for relation in READ_RELATIONS {
        let sql =
            format!("select count(*), count(*) filter (where tenant_id = $1) from read.{relation}");
        let (all, own): (i64, i64) = sqlx::query_as(&sql)
            .bind(tenant)
            .fetch_one(&mut *conn)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        counts.push((relation.to_owned(), all, own));
    }
    counts
}

#[tokio::test]
async fn bi_login_reads_only_its_tenant_and_writes_nothing() {
    let db = Db::new().await;
    let f = fixture(&db).await;
    let login = format!("bi_test_{}", Uuid::new_v4().simple());
    let password = Uuid::new_v4().simple().to_string();
    // The operator's recipe (docs/read-models.md): a login in b2b_bi, pinned to one tenant.
    db.exec(&format!(
        "create role {login} login password '{password}' in role b2b_bi"
    ))
    .await;
    sqlx::query("insert into read.bi_logins (login, tenant_id) values ($1, $2)")
        .bind(&login)
        .bind(f.a)
        .execute(&db.admin)
        .await
        .expect("pin the login to tenant A");

    let checks = async {
        // What each relation holds for tenant A, read past row-level security.
        let mut admin = db.admin.acquire().await.expect("a connection");
        let truth: Vec<(String, i64, i64)> = visible(&mut admin, f.a)
            .await
            .into_iter()
            .map(|(relation, _, own)| (relation, own, own))
            .collect();
        assert!(
            truth.iter().all(|(_, _, own)| *own > 0),
            "tenant A has rows everywhere: {truth:?}"
        );

        let options = PgConnectOptions::from_str(&db.database.url)
            .expect("a database URL")
            .username(&login)
            .password(&password);
        let mut bi = PgConnection::connect_with(&options)
            .await
            .expect("the BI login signs in");

        assert_eq!(
            visible(&mut bi, f.a).await,
            truth,
            "the BI login sees exactly tenant A's rows in every table and view"
        );
        let own: Vec<(String, Uuid)> =
            sqlx::query_as("select login::text, tenant_id from read.bi_logins")
                .fetch_all(&mut bi)
                .await
                .expect("read its own mapping");
        assert_eq!(own, vec![(login.clone(), f.a)], "only its own mapping row");

        // Naming another tenant changes nothing: the pin is not a setting the login controls.
        for set in [
            format!("set app.tenant_id = '{}'", f.b),
            format!("select set_config('app.tenant_id', '{}', false)", f.b),
        ] {
            bi.execute(set.as_str()).await.expect("any role may set it");
            assert_eq!(
                visible(&mut bi, f.a).await,
                truth,
                "still tenant A only after `{set}`"
            );
        }
        let mut tx = bi.begin().await.expect("begin");
        tx.execute(format!("set local app.tenant_id = '{}'", f.b).as_str())
            .await
            .expect("set local");
        assert_eq!(visible(&mut tx, f.a).await, truth, "nor with set local");
        tx.rollback().await.expect("rollback");

        // Acting as the bare group role drops the pin and with it every row.
        bi.execute("set role b2b_bi").await.expect("set role");
        let as_group = visible(&mut bi, f.a).await;
        assert!(
            as_group.iter().all(|(_, all, _)| *all == 0),
            "b2b_bi itself is pinned to no tenant: {as_group:?}"
        );
        bi.execute("reset role").await.expect("reset role");

        // Writes are refused on every read table, and BI reaches nothing outside `read`.
        for table in READ_TABLES {
            for sql in [
                format!("insert into read.{table} select * from read.{table} where false"),
                format!("update read.{table} set tenant_id = tenant_id"),
                format!("delete from read.{table}"),
                format!("truncate read.{table}"),
            ] {
                let code = refused(bi.execute(sql.as_str()).await, &sql);
                assert_eq!(code, "42501", "{sql}: insufficient privilege");
            }
        }
        for view in &READ_RELATIONS[8..] {
            let sql = format!("delete from read.{view}");
            refused(bi.execute(sql.as_str()).await, &sql);
        }
        for table in PRIVATE_TABLES {
            let sql = format!("select count(*) from {table}");
            let code = refused(bi.execute(sql.as_str()).await, &sql);
            assert_eq!(code, "42501", "{sql}: insufficient privilege");
        }
        let insert_event = "insert into events (aggregate_type, aggregate_id, sequence, \
                            event_type, event_version, payload, metadata) \
                            values ('Account', 'x', 1, 'E', '1', '{}', '{}')";
        let code = refused(bi.execute(insert_event).await, insert_event);
        assert_eq!(code, "42501", "BI cannot append events");
        for sql in [
            "create table read.bi_scratch (i integer)",
            "create table public.bi_scratch (i integer)",
            "create view read.bi_scratch as select 1",
        ] {
            let code = refused(bi.execute(sql).await, sql);
            assert_eq!(code, "42501", "{sql}: BI creates nothing");
        }

        // Even a login wrongly granted the services' role stays pinned to its tenant.
        db.exec(&format!("grant b2b_app to {login}")).await;
        bi.execute(format!("set app.tenant_id = '{}'", f.b).as_str())
            .await
            .expect("set");
        assert_eq!(
            visible(&mut bi, f.a).await,
            truth,
            "the restrictive pin holds for a login that also inherits b2b_app"
        );
        db.exec(&format!("revoke b2b_app from {login}")).await;
        bi.close().await.expect("sign out");

        // The services' role behaves as before: exactly the tenant its transaction names.
        admin.execute("set role b2b_app").await.expect("set role");
        for (tenant, other) in [(f.a, f.b), (f.b, f.a)] {
            admin
                .execute(format!("set app.tenant_id = '{tenant}'").as_str())
                .await
                .expect("set tenant");
            let seen = visible_tables(&mut admin, tenant).await;
            assert!(
                seen.iter().all(|(_, all, own)| all == own && *all > 0),
                "{seen:?}"
            );
            let other_rows = visible_tables(&mut admin, other).await;
            assert!(other_rows.iter().all(|(_, _, own)| *own == 0));
        }
        admin.execute("reset app.tenant_id").await.expect("reset");
        let none = visible_tables(&mut admin, f.a).await;
        assert!(
            none.iter().all(|(_, all, _)| *all == 0),
            "b2b_app without a tenant sees nothing: {none:?}"
        );
        admin.execute("reset role").await.expect("reset role");
    };
    let outcome = AssertUnwindSafe(checks).catch_unwind().await;
    // Sessions of the login end with the database; then the cluster-wide role goes, whether or
    // not the checks passed.
    drop(db);
    let mut server = PgConnection::connect(&env("DATABASE_OWNER_URL"))
        .await
        .expect("reach Postgres");
    server
        .execute(format!("drop role if exists {login}").as_str())
        .await
        .expect("drop the test login");
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// Like [`visible`], for the tables only (b2b_app has no grant on the BI views).
async fn visible_tables(conn: &mut PgConnection, tenant: Uuid) -> Vec<(String, i64, i64)> {
    let mut counts = Vec::new();
    for &relation in &READ_RELATIONS[..8] {
        let sql =
            format!("select count(*), count(*) filter (where tenant_id = $1) from read.{relation}");
        let (all, own): (i64, i64) = sqlx::query_as(&sql)
            .bind(tenant)
            .fetch_one(&mut *conn)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        counts.push((relation.to_owned(), all, own));
    }
    counts
}
