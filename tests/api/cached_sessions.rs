//! Sessions are cached in each process; a change made through one process applies to the very
//! next request at another (the cache is told over Postgres LISTEN/NOTIFY).
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{Api, Process, Tenant, TestStack, PASSWORD};

struct TwoProcesses {
    stack: TestStack,
    tenant: Tenant,
    /// Where changes are made.
    a: Api,
    /// Where the next request goes.
    b: Api,
    admin: String,
    _servers: (Process, Process),
}

impl TwoProcesses {
    async fn start(slug: &str) -> Self {
        let stack = TestStack::new().await;
        let tenant = stack.create_tenant(slug).await;
        let first = stack.spawn(&["command-api"]).await;
        let second = stack.spawn(&["command-api"]).await;
        let (a, b) = (Api::new(&first), Api::new(&second));
        let admin = a.login(&tenant).await;
        Self {
            stack,
            tenant,
            a,
            b,
            admin,
            _servers: (first, second),
        }
    }

    async fn manager(&self, email: &str) -> (Uuid, String) {
        let id = self
            .a
            .register(&self.admin, email, json!(["Manager"]), None)
            .await;
        let pair = self.a.sign_in(&self.tenant, email).await;
        (id, pair["access_token"].as_str().unwrap().to_owned())
    }

    /// `GET /auth/me` at the second process: its status and, when admitted, the roles.
    async fn me_at_b(&self, token: &str) -> (StatusCode, Value) {
        let response = self.b.me(token).await;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        (status, body["roles"].clone())
    }
}

#[tokio::test]
async fn sign_out_at_one_process_refuses_the_next_request_at_another() {
    let world = TwoProcesses::start("cache-logout").await;
    let pair = world.a.sign_in(&world.tenant, &world.tenant.email).await;
    let token = pair["access_token"].as_str().unwrap();
    for _ in 0..3 {
        assert_eq!(world.me_at_b(token).await.0, StatusCode::OK);
    }
    let logout = world
        .a
        .http
        .post(format!("{}/api/v1/auth/logout", world.a.base_url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert!(logout.status().is_success());
    assert_eq!(world.me_at_b(token).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(world.me_at_b(&world.admin).await.0, StatusCode::OK);
}

#[tokio::test]
async fn deactivation_and_role_changes_at_one_process_apply_at_another() {
    let world = TwoProcesses::start("cache-roles").await;
    let (id, token) = world.manager("m@cache-roles.test").await;
    assert_eq!(
        world.me_at_b(&token).await,
        (StatusCode::OK, json!(["Manager"]))
    );

    let to_viewer = json!({"type": "ChangeRoles", "roles": ["Viewer"]});
    world.a.ok_in(&world.admin, "users", id, to_viewer).await;
    assert_eq!(
        world.me_at_b(&token).await,
        (StatusCode::OK, json!(["Viewer"]))
    );

    let deactivate = json!({"type": "DeactivateUser", "reason": "left the company"});
    world.a.ok_in(&world.admin, "users", id, deactivate).await;
    assert_eq!(world.me_at_b(&token).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_password_change_ends_the_users_other_sessions_everywhere() {
    let world = TwoProcesses::start("cache-password").await;
    let email = "m@cache-password.test";
    let (id, changing) = world.manager(email).await;
    let other = world.b.sign_in(&world.tenant, email).await;
    let other = other["access_token"].as_str().unwrap();
    assert_eq!(world.me_at_b(other).await.0, StatusCode::OK);
    assert_eq!(world.me_at_b(&changing).await.0, StatusCode::OK);

    // Changed by the user: the session it was changed from stays, every other one ends.
    let own = json!({"type": "ChangePassword", "password": "a brand new passphrase"});
    world.a.ok_in(&changing, "users", id, own).await;
    assert_eq!(world.me_at_b(other).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(world.me_at_b(&changing).await.0, StatusCode::OK);
    let old = world.b.login_as(&world.tenant, email, PASSWORD).await;
    assert_eq!(old.status(), StatusCode::UNAUTHORIZED);

    // Reset by an admin: every session of the user ends.
    let reset = json!({"type": "ChangePassword", "password": "an admin chosen passphrase"});
    world.a.ok_in(&world.admin, "users", id, reset).await;
    assert_eq!(world.me_at_b(&changing).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(world.me_at_b(&world.admin).await.0, StatusCode::OK);
    let revoked: i64 = sqlx::query_scalar(
        "select count(*) from sessions where user_id = $1 and revoked_at is not null",
    )
    .bind(id)
    .fetch_one(&world.stack.db)
    .await
    .unwrap();
    assert_eq!(revoked, 2);
}

/// A process busy handling a change (here: a cache that takes half a second to forget) holds
/// back the writer's reply until it is done, so no replica answers from a stale cache after
/// the write was acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_is_acknowledged_only_after_every_listening_process_has_handled_it() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use event_store::{Invalidation, Invalidations};

    let stack = TestStack::new().await;
    let forgotten = Arc::new(AtomicBool::new(false));
    let (live_tx, mut live) = tokio::sync::mpsc::unbounded_channel();
    let listener = |slow: Option<Arc<AtomicBool>>| {
        let live_tx = live_tx.clone();
        Arc::new(
            Invalidations::new(stack.db.clone()).on_change(move |change| match change {
                Invalidation::Live(true) => {
                    let _ = live_tx.send(());
                }
                Invalidation::Changed {
                    kind: "session", ..
                } => {
                    if let Some(forgotten) = &slow {
                        std::thread::sleep(Duration::from_millis(500));
                        forgotten.store(true, Ordering::Release);
                    }
                }
                _ => {}
            }),
        )
    };
    let writer = listener(None);
    let slow_replica = listener(Some(forgotten.clone()));
    let tasks = [
        tokio::spawn(writer.clone().run()),
        tokio::spawn(slow_replica.run()),
    ];
    for _ in 0..2 {
        live.recv().await.unwrap();
    }

    Invalidations::announce(&stack.db, "session", &[Uuid::new_v4()])
        .await
        .unwrap();
    writer.barrier().await;
    assert!(
        forgotten.load(Ordering::Acquire),
        "the barrier returned before the other process had forgotten the session"
    );
    for task in tasks {
        task.abort();
    }
}
