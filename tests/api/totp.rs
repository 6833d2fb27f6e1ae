//! Two-factor sign-in (TOTP, RFC 6238): enrolment shows the secret once and is confirmed with a
//! first code; then a password alone gets an `mfa_token`, completed with a code (each time step
//! once) or a single-use recovery code; wrong codes count toward the sign-in lockout; a tenant
//! policy makes some roles enrol as part of signing in. Codes are computed from the secret the
//! enrolment showed, as an authenticator app would.
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{problem, Api, Tenant, TestStack, PASSWORD};

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The code an authenticator shows `steps` time steps from now.
pub fn code(secret: &[u8], steps: i64) -> String {
    let at = now().saturating_add_signed(steps * auth::totp::STEP_SECONDS as i64);
    auth::totp::code_at(secret, at)
}

async fn post(api: &Api, path: &str, bearer: Option<&str>, body: Value) -> Response {
    let mut request = api
        .http
        .post(format!("{}/api/v1/auth/{path}", api.base_url))
        .json(&body);
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

async fn ok(response: Response) -> Value {
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// Enrols the session's user; returns the secret read back from the otpauth URI.
pub async fn enroll(api: &Api, token: &str) -> Vec<u8> {
    let enrolment = ok(post(api, "totp/enroll", Some(token), json!({})).await).await;
    let uri = enrolment["otpauth_uri"].as_str().unwrap();
    assert!(uri.starts_with("otpauth://totp/b2b:"), "{uri}");
    assert!(uri.contains("issuer=b2b"), "{uri}");
    auth::totp::secret_from_uri(uri).expect("the URI carries the secret")
}

/// Enrols and confirms the session's user; returns the secret and the recovery codes.
pub async fn enable(api: &Api, token: &str) -> (Vec<u8>, Vec<String>) {
    let secret = enroll(api, token).await;
    let body = json!({ "code": code(&secret, 0) });
    let confirmed = ok(post(api, "totp/confirm", Some(token), body).await).await;
    let codes = confirmed["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    (secret, codes)
}

/// A correct password of a user who needs a second factor: the `mfa_token`.
async fn challenge(api: &Api, tenant: &Tenant, email: &str, enrol: bool) -> String {
    let answer = ok(api.login_as(tenant, email, PASSWORD).await).await;
    assert_eq!(answer["mfa_required"], true, "{answer}");
    assert_eq!(answer["enrollment_required"], enrol, "{answer}");
    assert!(answer["access_token"].is_null(), "{answer}");
    answer["mfa_token"].as_str().unwrap().to_owned()
}

async fn complete(api: &Api, mfa_token: &str, code: &str) -> Response {
    let body = json!({ "mfa_token": mfa_token, "code": code });
    post(api, "login/totp", None, body).await
}

async fn sessions(stack: &TestStack) -> i64 {
    sqlx::query_scalar("select count(*) from sessions")
        .fetch_one(&stack.db)
        .await
        .unwrap()
}

#[tokio::test]
async fn after_enrolling_a_sign_in_needs_a_code_that_works_once() {
    let stack = TestStack::new().await;
    let tenant = stack.create_tenant("totp-use").await;
    let server = stack.spawn(&["command-api"]).await;
    let api = Api::new(&server);
    let admin = api.login(&tenant).await;
    let email = "m@totp-use.test";
    let user = api.register(&admin, email, json!(["Manager"]), None).await;
    let token = api.sign_in(&tenant, email).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();

    // Enrolled but not confirmed: the secret is stored, sign-in still needs no code.
    let secret = enroll(&api, &token).await;
    let (stored, confirmed): (Vec<u8>, bool) =
        sqlx::query_as("select secret, confirmed_at is not null from user_totp where user_id = $1")
            .bind(user)
            .fetch_one(&stack.db)
            .await
            .unwrap();
    assert_eq!((stored, confirmed), (secret.clone(), false));
    assert!(api.sign_in(&tenant, email).await["access_token"].is_string());

    // Confirmed by a right code only; that makes ten recovery codes, stored hashed.
    let wrong = if code(&secret, 0) == "000000" {
        "111111"
    } else {
        "000000"
    };
    let refused = post(&api, "totp/confirm", Some(&token), json!({ "code": wrong })).await;
    let answer = problem(refused, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(answer["type"], "/problems/rule-violated/totp_code_wrong");
    let confirmation = code(&secret, 0);
    let body = json!({ "code": confirmation });
    let confirmed = ok(post(&api, "totp/confirm", Some(&token), body).await).await;
    let recovery: Vec<String> =
        serde_json::from_value(confirmed["recovery_codes"].clone()).unwrap();
    assert_eq!(recovery.len(), 10);
    let hashes: Vec<Vec<u8>> =
        sqlx::query_scalar("select code_hash from totp_recovery_codes where user_id = $1")
            .bind(user)
            .fetch_all(&stack.db)
            .await
            .unwrap();
    assert_eq!(hashes.len(), 10);
    assert!(hashes
        .iter()
        .all(|h| h.len() == 32 && !recovery.iter().any(|c| c.as_bytes() == h)));
    let again = post(&api, "totp/enroll", Some(&token), json!({})).await;
    let answer = problem(again, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(
        answer["type"],
        "/problems/rule-violated/totp_already_enabled"
    );

    // The password alone opens no session.
    let before = sessions(&stack).await;
    let mfa_token = challenge(&api, &tenant, email, false).await;
    assert_eq!(sessions(&stack).await, before);
    // The confirmation's code was used: replaying it is refused, and so is garbage.
    for bad in [confirmation.as_str(), "12345", "not a code"] {
        let answer = problem(
            complete(&api, &mfa_token, bad).await,
            StatusCode::UNAUTHORIZED,
        )
        .await;
        assert_eq!(answer["type"], "/problems/unauthorized", "{bad}");
    }
    assert_eq!(sessions(&stack).await, before);
    // The next step's code (within the allowed drift) completes the sign-in, once.
    let next = code(&secret, 1);
    let signed_in = ok(complete(&api, &mfa_token, &next).await).await;
    let session = signed_in["access_token"].as_str().unwrap();
    assert_eq!(api.me(session).await.status(), StatusCode::OK);
    problem(
        complete(&api, &mfa_token, &code(&secret, 0)).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let mfa_token = challenge(&api, &tenant, email, false).await;
    problem(
        complete(&api, &mfa_token, &next).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;

    // A recovery code (typed in capitals, without its dash) works once.
    let typed = recovery[3].to_uppercase().replace('-', "");
    ok(complete(&api, &mfa_token, &typed).await).await;
    let mfa_token = challenge(&api, &tenant, email, false).await;
    problem(
        complete(&api, &mfa_token, &recovery[3]).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    ok(complete(&api, &mfa_token, &recovery[4]).await).await;
    let used: i64 = sqlx::query_scalar(
        "select count(*) from totp_recovery_codes where user_id = $1 and used_at is not null",
    )
    .bind(user)
    .fetch_one(&stack.db)
    .await
    .unwrap();
    assert_eq!(used, 2);
    // An unknown token.
    let unknown = complete(
        &api,
        &Uuid::new_v4().simple().to_string(),
        &code(&secret, 0),
    )
    .await;
    problem(unknown, StatusCode::UNAUTHORIZED).await;
}

#[tokio::test]
async fn wrong_codes_count_toward_the_sign_in_lockout() {
    let stack = TestStack::new().await;
    let tenant = stack.create_tenant("totp-lock").await;
    let server = stack
        .spawn_with_env(
            &["command-api"],
            &[
                ("SIGN_IN_MAX_FAILURES", "3"),
                ("SIGN_IN_LOCK_SECONDS", "30"),
            ],
        )
        .await;
    let api = Api::new(&server);
    let admin = api.login(&tenant).await;
    let email = "o@totp-lock.test";
    api.register(&admin, email, json!(["Operator"]), None).await;
    let token = api.sign_in(&tenant, email).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (secret, _) = enable(&api, &token).await;

    // The password (1) and two wrong codes (2, 3) use up the attempts: the fourth is refused
    // even with the right code, and so is the password after it.
    let mfa_token = challenge(&api, &tenant, email, false).await;
    let right = code(&secret, 1);
    let wrong = if right == "000000" {
        "111111"
    } else {
        "000000"
    };
    for _ in 0..2 {
        problem(
            complete(&api, &mfa_token, wrong).await,
            StatusCode::UNAUTHORIZED,
        )
        .await;
    }
    let locked = complete(&api, &mfa_token, &right).await;
    assert!(locked.headers().contains_key("retry-after"));
    let answer = problem(locked, StatusCode::TOO_MANY_REQUESTS).await;
    assert!(answer["detail"]
        .as_str()
        .unwrap()
        .starts_with("too many failed sign-ins"));
    problem(
        api.login_as(&tenant, email, PASSWORD).await,
        StatusCode::TOO_MANY_REQUESTS,
    )
    .await;

    // From another address the user still gets in, and success clears that source's count.
    let elsewhere = Api::from_address(&server, "127.0.0.3");
    let mfa_token = challenge(&elsewhere, &tenant, email, false).await;
    ok(complete(&elsewhere, &mfa_token, &right).await).await;
    let failures: Option<i32> = sqlx::query_scalar(
        "select failures from sign_in_failures where email = $1 and source = '127.0.0.3'",
    )
    .bind(email)
    .fetch_optional(&stack.db)
    .await
    .unwrap();
    assert_eq!(failures, None);
}

#[tokio::test]
async fn a_tenant_policy_makes_a_role_enrol_as_part_of_signing_in() {
    let stack = TestStack::new().await;
    let tenant = stack.create_tenant("totp-policy").await;
    let server = stack.spawn(&["command-api"]).await;
    let api = Api::new(&server);
    let admin = api.login(&tenant).await;
    for (email, role) in [
        ("m@totp-policy.test", "Manager"),
        ("v@totp-policy.test", "Viewer"),
    ] {
        api.register(&admin, email, json!([role]), None).await;
    }
    require_totp_for(&stack, &tenant, json!(["Manager"])).await;

    // Not required of a Viewer.
    assert!(api.sign_in(&tenant, "v@totp-policy.test").await["access_token"].is_string());
    // A Manager without TOTP enrols with the sign-in's token instead of a session.
    let email = "m@totp-policy.test";
    let mfa_token = challenge(&api, &tenant, email, true).await;
    problem(
        complete(&api, &mfa_token, "123456").await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    problem(
        post(&api, "totp/enroll", None, json!({})).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let body = json!({ "mfa_token": mfa_token });
    let enrolment = ok(post(&api, "totp/enroll", None, body).await).await;
    let secret = auth::totp::secret_from_uri(enrolment["otpauth_uri"].as_str().unwrap()).unwrap();
    let body = json!({ "mfa_token": mfa_token, "code": code(&secret, 0) });
    let confirmed = ok(post(&api, "totp/confirm", None, body.clone()).await).await;
    assert_eq!(confirmed["recovery_codes"].as_array().unwrap().len(), 10);
    let session = confirmed["session"]["access_token"].as_str().unwrap();
    let me: Value = api.me(session).await.json().await.unwrap();
    assert_eq!(me["email"], email);
    // The token completed its sign-in; from now on a code is asked for.
    problem(
        post(&api, "totp/confirm", None, body).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let mfa_token = challenge(&api, &tenant, email, false).await;
    ok(complete(&api, &mfa_token, &code(&secret, 1)).await).await;

    // Two-factor sign-in is a person's: an API key may not enrol.
    let key = Uuid::new_v4();
    let create = json!({
        "type": "CreateApiKey", "name": "k", "roles": ["Manager"],
        "expires_at": (chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339(),
    });
    let created: Value = api
        .http
        .post(format!("{}/api/v1/api-keys/{key}", api.base_url))
        .bearer_auth(&admin)
        .json(&create)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let secret = created["secret"].as_str().unwrap();
    problem(
        post(&api, "totp/enroll", Some(secret), json!({})).await,
        StatusCode::FORBIDDEN,
    )
    .await;
}

/// `b2b tenant set-policy` with `mfa_required_roles` set.
async fn require_totp_for(stack: &TestStack, tenant: &Tenant, roles: Value) {
    let (shown, policy, _) = stack
        .b2b(&["tenant", "policy", "--slug", &tenant.slug])
        .await;
    assert!(shown);
    let mut policy: Value = serde_json::from_str(&policy).unwrap();
    policy["mfa_required_roles"] = roles;
    let file = std::env::temp_dir().join(format!("policy-{}.json", Uuid::new_v4()));
    std::fs::write(&file, policy.to_string()).unwrap();
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
