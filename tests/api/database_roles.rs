//! The services' Postgres logins (migration 0021): they own nothing, are no superusers, cannot
//! become the owner, and see one tenant's rows of every tenant table, the one their
//! transaction names, even after `reset role`.
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use sqlx::{Connection, Executor, PgConnection};
use uuid::Uuid;

use crate::helpers::{open_account, Api, Process, Tenant, TestStack, PASSWORD};

/// Every tenant table the services read, with the column naming its tenant.
const TENANT_TABLES: [(&str, &str); 12] = [
    ("events", "tenant_id"),
    ("user_credentials", "tenant_id"),
    ("sessions", "tenant_id"),
    ("refresh_tokens", "tenant_id"),
    ("idempotency_keys", "tenant_id"),
    ("tenant_policies", "tenant_id"),
    ("sign_in_failures", "tenant_id"),
    ("tenants", "id"),
    ("api_keys", "tenant_id"),
    ("user_totp", "tenant_id"),
    ("totp_recovery_codes", "tenant_id"),
    ("mfa_challenges", "tenant_id"),
];

const LOGINS: [&str; 2] = ["b2b_api", "b2b_worker"];

#[tokio::test]
async fn services_log_in_as_logins_that_are_no_superusers_own_nothing_and_cannot_become_owner() {
    let stack = TestStack::new().await;
    let tenant = stack.create_tenant("logins").await;
    let logins = || async {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "select usename::text, count(*) from pg_stat_activity \
              where datname = $1 and pid <> pg_backend_pid() group by 1 order by 1",
        )
        .bind(&stack.database.name)
        .fetch_all(&stack.db)
        .await
        .unwrap();
        rows
    };
    let before = logins().await;
    let server = stack.spawn(&["serve"]).await;
    let api = Api::new(&server);
    let token = api.login(&tenant).await;
    api.ok(&token, Uuid::new_v4(), open_account("Umbrella"))
        .await;
    let mut during = logins().await;
    // The test's own owner connections are all the owner's.
    during.retain(|row| !before.contains(row));
    let names: Vec<&str> = during.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        names, LOGINS,
        "the service's connections: {during:?} (before: {before:?})"
    );

    for login in LOGINS {
        let (superuser, bypasses, creates_roles, creates_databases): (bool, bool, bool, bool) =
            sqlx::query_as(
                "select rolsuper, rolbypassrls, rolcreaterole, rolcreatedb \
                   from pg_roles where rolname = $1",
            )
            .bind(login)
            .fetch_one(&stack.db)
            .await
            .unwrap_or_else(|e| panic!("no login {login}: {e}"));
        assert!(
            !(superuser || bypasses || creates_roles || creates_databases),
            "{login}: superuser {superuser}, bypassrls {bypasses}, createrole {creates_roles}, \
             createdb {creates_databases}"
        );
        // Ownership of anything in any database of the cluster is recorded in pg_shdepend.
        let (owned, owner_member): (i64, bool) = sqlx::query_as(
            "select (select count(*) from pg_shdepend d join pg_roles r on r.oid = d.refobjid \
                      where r.rolname = $1 and d.deptype = 'o') \
                  + (select count(*) from pg_database d join pg_roles r on r.oid = d.datdba \
                      where r.rolname = $1), \
                    pg_has_role($1, (select relowner from pg_class \
                                      where oid = 'public.events'::regclass), 'member')",
        )
        .bind(login)
        .fetch_one(&stack.db)
        .await
        .unwrap();
        assert_eq!(owned, 0, "{login} owns objects");
        assert!(!owner_member, "{login} may become the owner");
    }

    for (login, url) in [
        ("b2b_api", &stack.database.api_url),
        ("b2b_worker", &stack.database.worker_url),
    ] {
        let mut conn = PgConnection::connect(url).await.unwrap();
        conn.execute("reset role").await.unwrap();
        let who: String = sqlx::query_scalar("select current_user::text")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(who, login, "reset role leaves the login itself");
        for owner in ["b2b", "postgres"] {
            let refused = conn.execute(format!("set role {owner}").as_str()).await;
            assert!(refused.is_err(), "{login} became {owner}");
        }
        let ddl = conn
            .execute("alter table events disable trigger user")
            .await;
        assert!(ddl.is_err(), "{login} altered the event store");
        conn.close().await.unwrap();
    }
}

#[tokio::test]
async fn services_refuse_to_log_in_as_the_owner() {
    let stack = TestStack::new().await;
    for (part, variable) in [
        ("command-api", "DATABASE_URL"),
        ("relay", "WORKER_DATABASE_URL"),
    ] {
        let mut command = stack.command(&[part]);
        command.env(variable, &stack.database.url);
        let output = tokio::time::timeout(Duration::from_secs(30), command.output())
            .await
            .unwrap_or_else(|_| panic!("{part} ran as the owner"))
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{part}: {stderr}");
        assert!(
            stderr.contains(variable) && stderr.contains("superuser"),
            "{stderr}"
        );
    }
}

#[tokio::test]
async fn the_api_login_sees_no_tenants_rows_after_reset_role_and_one_tenants_when_named() {
    let stack = TestStack::new().await;
    let tenants = [
        stack.create_tenant("rls-a").await,
        stack.create_tenant("rls-b").await,
    ];
    let server = stack.spawn(&["command-api"]).await;
    for tenant in &tenants {
        leave_rows_in_every_table(&stack, &server, tenant).await;
    }
    for (table, column) in TENANT_TABLES {
        for tenant in &tenants {
            assert!(
                owner_count(&stack, table, column, tenant.id).await > 0,
                "{table} has no row of {} to hide",
                tenant.slug
            );
        }
    }

    let (a, b) = (&tenants[0], &tenants[1]);
    let mut conn = PgConnection::connect(&stack.database.api_url)
        .await
        .unwrap();
    conn.execute("reset role").await.unwrap();
    for (table, _) in TENANT_TABLES {
        assert_eq!(
            count(&mut conn, table, "true").await,
            0,
            "{table} without a tenant"
        );
    }

    sqlx::query("select set_config('app.tenant_id', $1, false)")
        .bind(a.id.to_string())
        .execute(&mut conn)
        .await
        .unwrap();
    for (table, column) in TENANT_TABLES {
        let visible = count(&mut conn, table, "true").await;
        assert_eq!(
            visible,
            owner_count(&stack, table, column, a.id).await,
            "{table}: all of A's rows"
        );
        let foreign = count(&mut conn, table, &format!("{column} = '{}'", b.id)).await;
        assert_eq!(foreign, 0, "{table}: none of B's");
    }
    // Rows of another tenant cannot be written either.
    let planted = sqlx::query(
        "insert into sessions (id, tenant_id, user_id, expires_at) \
         select gen_random_uuid(), $1, user_id, now() + interval '1 day' \
           from user_credentials",
    )
    .bind(b.id)
    .execute(&mut conn)
    .await;
    assert!(planted.is_err(), "a session planted in B");

    // What only the workers use is not the APIs' to read or write.
    conn.execute("reset app.tenant_id").await.unwrap();
    for statement in [
        "select * from relay_state",
        "select * from process_id_key",
        "select * from scheduled_commands",
        "delete from read.accounts",
        "delete from projection_checkpoints",
        "select * from audit_checkpoints",
        "select * from audit_checkpoint_heads",
    ] {
        let refused = conn.execute(statement).await.unwrap_err();
        assert!(
            refused.to_string().contains("permission denied"),
            "{statement}: {refused}"
        );
    }
    conn.close().await.unwrap();
}

#[tokio::test]
async fn the_worker_login_reads_every_tenants_events_and_no_ones_credentials_or_sessions() {
    let stack = TestStack::new().await;
    let tenants = [
        stack.create_tenant("wrk-a").await,
        stack.create_tenant("wrk-b").await,
    ];
    let server = stack.spawn(&["command-api"]).await;
    for tenant in &tenants {
        leave_rows_in_every_table(&stack, &server, tenant).await;
    }
    let mut conn = PgConnection::connect(&stack.database.worker_url)
        .await
        .unwrap();
    conn.execute("reset role").await.unwrap();
    // The relay publishes every tenant's events; the checkpoint worker signs every tenant's.
    for table in ["events", "tenants"] {
        let all: i64 = sqlx::query_scalar(&format!("select count(*) from {table}"))
            .fetch_one(&stack.db)
            .await
            .unwrap();
        assert_eq!(count(&mut conn, table, "true").await, all, "{table}");
    }
    for (table, _) in TENANT_TABLES
        .into_iter()
        .filter(|(t, _)| !["events", "tenants"].contains(t))
    {
        assert_eq!(count(&mut conn, table, "true").await, 0, "{table}");
    }

    // Signed checkpoints: the worker's, one tenant at a time, like the other tenant tables.
    let (signed, stdout, stderr) = stack.b2b(&["audit", "checkpoint"]).await;
    assert!(signed, "{stdout}{stderr}");
    for table in ["audit_checkpoints", "audit_checkpoint_heads"] {
        assert_eq!(count(&mut conn, table, "true").await, 0, "{table}");
    }
    let (a, b) = (&tenants[0], &tenants[1]);
    sqlx::query("select set_config('app.tenant_id', $1, false)")
        .bind(a.id.to_string())
        .execute(&mut conn)
        .await
        .unwrap();
    for table in ["audit_checkpoints", "audit_checkpoint_heads"] {
        let own = owner_count(&stack, table, "tenant_id", a.id).await;
        assert!(own > 0, "{table} has no row of A");
        assert_eq!(count(&mut conn, table, "true").await, own, "{table}: A's");
    }
    let forged = sqlx::query(
        "insert into audit_checkpoint_heads \
                (tenant_id, aggregate_type, aggregate_id, checkpoint_number, sequence, hash) \
         select $1, aggregate_type, aggregate_id || 'x', checkpoint_number, sequence, hash \
           from audit_checkpoint_heads limit 1",
    )
    .bind(b.id)
    .execute(&mut conn)
    .await
    .expect_err("a checkpoint head written into B");
    assert!(
        forged.to_string().contains("row-level security"),
        "{forged}"
    );
    conn.close().await.unwrap();
}

/// A session with a refresh token, a failed sign-in, a keyed command's receipt and its event,
/// a stored policy, an API key, and a user with TOTP half-way through signing in: a row of
/// `tenant` in every tenant table.
async fn leave_rows_in_every_table(stack: &TestStack, server: &Process, tenant: &Tenant) {
    // From another address than the success below, which clears its own source's failures.
    let guesser = Api::from_address(server, "127.0.0.2");
    let wrong = guesser
        .login_as(tenant, &tenant.email, "not the password")
        .await;
    let api = Api::new(server);
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let token = api.login(tenant).await;
    let keyed = api
        .command(&token, "accounts", Uuid::new_v4())
        .header("Idempotency-Key", "rls")
        .json(&open_account("Initech"))
        .send()
        .await
        .unwrap();
    assert_eq!(keyed.status(), StatusCode::OK);
    let key = json!({
        "type": "CreateApiKey", "name": "rls", "roles": ["Viewer"],
        "expires_at": (chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339(),
    });
    let created = api
        .http
        .post(format!(
            "{}/api/v1/api-keys/{}",
            api.base_url,
            Uuid::new_v4()
        ))
        .bearer_auth(&token)
        .json(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::OK);
    let email = format!("totp@{}.test", tenant.slug);
    api.register(&token, &email, json!(["Viewer"]), None).await;
    let user = api.sign_in(tenant, &email).await;
    crate::totp::enable(&api, user["access_token"].as_str().unwrap()).await;
    let halfway: serde_json::Value = api
        .login_as(tenant, &email, PASSWORD)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(halfway["mfa_required"], true);
    let (shown, policy, _) = stack
        .b2b(&["tenant", "policy", "--slug", &tenant.slug])
        .await;
    assert!(shown, "tenant policy");
    let file = std::env::temp_dir().join(format!("policy-{}.json", Uuid::new_v4()));
    std::fs::write(&file, policy).unwrap();
    let (stored, _, error) = stack
        .b2b(&[
            "tenant",
            "set-policy",
            "--slug",
            &tenant.slug,
            "--file",
            file.to_str().unwrap(),
        ])
        .await;
    std::fs::remove_file(&file).unwrap();
    assert!(stored, "{error}");
}

async fn count(conn: &mut PgConnection, table: &str, condition: &str) -> i64 {
    sqlx::query_scalar(&format!("select count(*) from {table} where {condition}"))
        .fetch_one(conn)
        .await
        .unwrap_or_else(|e| panic!("{table}: {e}"))
}

/// As the owner, past row-level security.
async fn owner_count(stack: &TestStack, table: &str, column: &str, tenant: Uuid) -> i64 {
    sqlx::query_scalar(&format!("select count(*) from {table} where {column} = $1"))
        .bind(tenant)
        .fetch_one(&stack.db)
        .await
        .unwrap()
}
