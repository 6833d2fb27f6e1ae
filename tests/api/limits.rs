//! Abuse limits: sign-in lockout after repeated failures (the same for real and unknown
//! addresses, visible to admins), the per-user request limit and a Partner account's API quota,
//! both answered 429 with `Retry-After` and nothing appended.
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{event_count, eventually, open_account, problem, Api, TestStack, PASSWORD};

async fn too_many(response: Response) -> (u32, Value) {
    let retry_after: u32 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let body = problem(response, StatusCode::TOO_MANY_REQUESTS).await;
    assert_eq!(body["type"], "/problems/too-many-requests");
    (retry_after, body)
}

#[tokio::test]
async fn repeated_failures_lock_an_address_whether_or_not_it_exists_and_admins_see_it() {
    let stack = TestStack::new().await;
    let tenant = stack.create_tenant("lockout").await;
    let server = stack
        .spawn_with_env(
            &["serve"],
            &[
                ("SIGN_IN_MAX_FAILURES", "3"),
                ("SIGN_IN_LOCK_SECONDS", "12"),
            ],
        )
        .await;
    let api = Api::new(&server);
    let admin = api.login(&tenant).await;
    let user = api
        .register(&admin, "target@lockout.test", json!(["Operator"]), None)
        .await;
    api.register(&admin, "viewer@lockout.test", json!(["Viewer"]), None)
        .await;
    let viewer = api.sign_in(&tenant, "viewer@lockout.test").await;

    // The target last, so the lock is fresh when the admin looks.
    for email in ["nobody@lockout.test", "target@lockout.test"] {
        for _ in 0..3 {
            let wrong = api
                .login_as(&tenant, email, "not the password at all")
                .await;
            let body = problem(wrong, StatusCode::UNAUTHORIZED).await;
            assert_eq!(body["type"], "/problems/unauthorized");
        }
        // Locked: even the right password is refused, and the answer does not tell whether
        // the address exists.
        let (retry_after, body) = too_many(api.login_as(&tenant, email, PASSWORD).await).await;
        assert!((1..=12).contains(&retry_after), "{retry_after}");
        assert!(body["detail"]
            .as_str()
            .unwrap()
            .starts_with("too many failed sign-ins"));
    }
    let query =
        r#"{ users(filter: { search: "target" }) { edges { node { id signInLockedUntil } } } }"#;
    let seen = api.graphql(&admin, query, Some((user, 1))).await;
    let node = &seen["data"]["users"]["edges"][0]["node"];
    assert_eq!(node["id"], json!(user.to_string()), "{seen}");
    assert!(node["signInLockedUntil"].is_string(), "{seen}");
    let hidden = api
        .graphql(viewer["access_token"].as_str().unwrap(), query, None)
        .await;
    assert_eq!(
        hidden["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{hidden}"
    );

    // A success clears the count: two failures, a success, two more failures are no lock.
    for attempt in ["wrong", "wrong", PASSWORD, "wrong", "wrong", PASSWORD] {
        let response = api.login_as(&tenant, &tenant.email, attempt).await;
        let expected = if attempt == PASSWORD { 200 } else { 401 };
        assert_eq!(response.status().as_u16(), expected, "{attempt}");
    }
    // Attempts sent all at once are counted before their passwords are checked: only three
    // get an answer about the password.
    let burst = futures::future::join_all(
        (0..10).map(|_| api.login_as(&tenant, "burst@lockout.test", "not the password")),
    )
    .await;
    let checked = burst
        .iter()
        .filter(|r| r.status() == StatusCode::UNAUTHORIZED)
        .count();
    let locked = burst
        .iter()
        .filter(|r| r.status() == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!((checked, locked), (3, 7));
    // Another address of the same tenant is not affected.
    assert_eq!(
        api.login_as(&tenant, &tenant.email, PASSWORD)
            .await
            .status(),
        StatusCode::OK
    );

    // The lock lifts by itself, and a success clears the count.
    eventually("the lock to lift", || async {
        let response = api.login_as(&tenant, "target@lockout.test", PASSWORD).await;
        (response.status() == StatusCode::OK).then_some(())
    })
    .await;
    let unlocked = api.graphql(&admin, query, None).await;
    assert!(unlocked["data"]["users"]["edges"][0]["node"]["signInLockedUntil"].is_null());
}

/// Sends requests until the first 429, all within one clock minute of the database (one
/// request window); returns how many were let through before it, the refusal, and the number
/// of events stored when that window's count began.
async fn until_refused<F>(stack: &TestStack, mut request: F) -> (usize, Response, i64)
where
    F: FnMut() -> reqwest::RequestBuilder,
{
    loop {
        let minute = db_minute(stack).await;
        let events = event_count(&stack.db).await;
        let mut passed = 0;
        let refusal = loop {
            let response = request().send().await.unwrap();
            if response.status() == StatusCode::TOO_MANY_REQUESTS {
                break response;
            }
            assert_eq!(response.status(), StatusCode::OK);
            passed += 1;
            assert!(passed < 1000, "never limited");
        };
        if db_minute(stack).await == minute {
            return (passed, refusal, events);
        }
        // The window turned over mid-count: start again in a fresh one.
        let left: f64 = sqlx::query_scalar(
            "select extract(epoch from date_trunc('minute', now()) + interval '1 minute' - now())::float8",
        )
        .fetch_one(&stack.db)
        .await
        .unwrap();
        tokio::time::sleep(std::time::Duration::from_secs_f64(left + 0.1)).await;
    }
}

async fn db_minute(stack: &TestStack) -> chrono::DateTime<chrono::Utc> {
    sqlx::query_scalar("select date_trunc('minute', now())")
        .fetch_one(&stack.db)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_user_over_the_per_minute_limit_gets_429_and_appends_nothing() {
    let stack = TestStack::new().await;
    let tenant = stack.create_tenant("ratelimit").await;
    let server = stack
        .spawn_with_env(&["serve"], &[("RATE_LIMIT_PER_USER_PER_MINUTE", "8")])
        .await;
    let api = Api::new(&server);
    let token = api.login(&tenant).await;
    let account = Uuid::new_v4();

    let mut sent = 0;
    let (passed, refusal, before) = until_refused(&stack, || {
        sent += 1;
        let body = if sent == 1 {
            open_account("Limited")
        } else {
            json!({"type": "UpdateAccountDetails", "name": format!("Limited {sent}")})
        };
        api.command(&token, "accounts", account).json(&body)
    })
    .await;
    let (retry_after, body) = too_many(refusal).await;
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_eq!(
        body["detail"],
        format!(
            "more than 8 requests this minute by this user; try again in {retry_after} seconds"
        )
    );
    let appended = event_count(&stack.db).await - before;
    let again = api.graphql_response(&token, "{ me { userId } }").await;
    too_many(again).await;
    // Signing in is not a request of the user's; the 8 admitted ones appended, no more.
    assert_eq!(passed, 8);
    assert_eq!(appended, 8);
}

#[tokio::test]
async fn an_accounts_partner_users_share_its_api_quota() {
    let stack = TestStack::new().await;
    let tenant = stack.create_tenant("quota").await;
    let server = stack.spawn(&["serve"]).await;
    let api = Api::new(&server);
    let admin = api.login(&tenant).await;
    let account = Uuid::new_v4();
    api.ok(&admin, account, open_account("Metered")).await;
    let version = api
        .ok(
            &admin,
            account,
            json!({"type": "SetApiQuota", "requests_per_minute": 5}),
        )
        .await;
    for email in ["p1@quota.test", "p2@quota.test"] {
        api.register(&admin, email, json!(["Partner"]), Some(account))
            .await;
    }
    // The quota is read from the account's read model.
    let seen = format!(r#"{{ account(id: "{account}") {{ apiQuotaPerMinute }} }}"#);
    let seen = api.graphql(&admin, &seen, Some((account, version))).await;
    assert_eq!(seen["data"]["account"]["apiQuotaPerMinute"], 5, "{seen}");
    let p1 = api.sign_in(&tenant, "p1@quota.test").await;
    let p2 = api.sign_in(&tenant, "p2@quota.test").await;
    let tokens = [
        p1["access_token"].as_str().unwrap().to_owned(),
        p2["access_token"].as_str().unwrap().to_owned(),
    ];

    let mut turn = 0;
    let (passed, refusal, _) = until_refused(&stack, || {
        turn += 1;
        api.http
            .get(format!("{}/api/v1/auth/me", api.base_url))
            .bearer_auth(&tokens[turn % 2])
    })
    .await;
    let (_, body) = too_many(refusal).await;
    assert!(body["detail"]
        .as_str()
        .unwrap()
        .starts_with("the account's API quota of 5 requests per minute is used up"));
    // The two Partners' requests counted together; the tenant's own staff are not metered by
    // the account.
    assert_eq!(passed, 5);
    let other = &tokens[(turn + 1) % 2];
    too_many(api.me(other).await).await;
    assert_eq!(api.me(&admin).await.status(), StatusCode::OK);
}

/// Password checks run a few at a time: a burst of parallel sign-ins beyond the queue is
/// refused at once with 429 and `Retry-After`, never a server error, and the rest are checked.
#[tokio::test]
async fn a_burst_of_parallel_sign_ins_beyond_the_hashing_queue_gets_429_not_memory() {
    use futures::StreamExt;

    let stack = TestStack::new().await;
    let server = stack.spawn(&["command-api"]).await;
    let api = Api::new(&server);
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    let burst = 5 * cores + 30;
    let statuses: Vec<(u16, Option<String>)> = futures::stream::iter(0..burst)
        .map(|n| {
            let api = &api;
            async move {
                let response = api
                    .http
                    .post(format!("{}/api/v1/auth/login", api.base_url))
                    .json(&json!({
                        "tenant": format!("nobody-{n}"), "email": "x@nowhere.test",
                        "password": "a wrong password"
                    }))
                    .send()
                    .await
                    .unwrap();
                let retry_after = response
                    .headers()
                    .get("retry-after")
                    .map(|v| v.to_str().unwrap().to_owned());
                (response.status().as_u16(), retry_after)
            }
        })
        .buffer_unordered(burst)
        .collect()
        .await;
    let refused: Vec<_> = statuses.iter().filter(|(s, _)| *s == 429).collect();
    assert!(!refused.is_empty(), "{statuses:?}");
    assert!(refused
        .iter()
        .all(|(_, retry)| retry.as_deref() == Some("1")));
    assert!(
        statuses.iter().all(|(s, _)| *s == 401 || *s == 429),
        "{statuses:?}"
    );
    assert!(statuses.iter().any(|(s, _)| *s == 401), "some were checked");
}

/// Six wrong passwords used to lock the account for everyone. The guesser's address is locked
/// now; the real user, from another address, still signs in; and one address guessing across
/// many e-mails is throttled before a password is even checked.
#[tokio::test]
async fn a_guesser_locks_only_itself_and_is_throttled_across_addresses() {
    let stack = TestStack::new().await;
    let tenant = stack.create_tenant("sources").await;
    let server = stack
        .spawn_with_env(
            &["command-api"],
            &[
                ("SIGN_IN_MAX_FAILURES", "3"),
                ("SIGN_IN_LOCK_SECONDS", "600"),
                ("SIGN_IN_PER_ADDRESS_PER_MINUTE", "8"),
            ],
        )
        .await;
    let guesser = Api::from_address(&server, "127.0.0.2");
    let user = Api::from_address(&server, "127.0.0.3");
    for _ in 0..3 {
        let wrong = guesser
            .login_as(&tenant, &tenant.email, "guess guess guess")
            .await;
        problem(wrong, StatusCode::UNAUTHORIZED).await;
    }
    // The guesser is locked out, even with the right password.
    let (retry_after, _) = too_many(guesser.login_as(&tenant, &tenant.email, PASSWORD).await).await;
    assert!(retry_after > 500, "{retry_after}");
    // The admin, from their own address, is not.
    let own = user.login_as(&tenant, &tenant.email, PASSWORD).await;
    assert_eq!(own.status(), StatusCode::OK);

    // Four more attempts from the guesser's address, on other e-mails, reach the limit of 8
    // per minute; the ninth is refused before any check, and says so.
    for n in 0..4 {
        let email = format!("someone{n}@sources.test");
        let wrong = guesser.login_as(&tenant, &email, "guess guess guess").await;
        problem(wrong, StatusCode::UNAUTHORIZED).await;
    }
    let (retry_after, body) = too_many(
        guesser
            .login_as(&tenant, "other@sources.test", "x-guess-x")
            .await,
    )
    .await;
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("from this address"),
        "{body}"
    );
    let again = user.login_as(&tenant, &tenant.email, PASSWORD).await;
    assert_eq!(
        again.status(),
        StatusCode::OK,
        "another address is not throttled"
    );
}
