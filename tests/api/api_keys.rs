//! API keys for machine clients: a TenantAdmin creates one (the secret shown once, stored
//! hashed), it works as a bearer on both APIs with its own roles, is named as the actor of what
//! it writes, is listed with its last use, and stops at once everywhere when revoked; expired,
//! malformed and other tenants' keys are refused, and only a signed-in TenantAdmin manages keys.
use chrono::{Duration, Utc};
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::helpers::{eventually, open_account, problem, Api, TestStack};

async fn key_command(api: &Api, token: &str, id: Uuid, body: Value) -> Response {
    api.http
        .post(format!("{}/api/v1/api-keys/{id}", api.base_url))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn create(name: &str, roles: Value, account_id: Option<Uuid>, expires_in: Duration) -> Value {
    json!({
        "type": "CreateApiKey", "name": name, "roles": roles, "account_id": account_id,
        "expires_at": (Utc::now() + expires_in).to_rfc3339(),
    })
}

/// Creates a key that must be accepted; returns its id and secret.
async fn new_key(api: &Api, admin: &str, roles: Value, account_id: Option<Uuid>) -> (Uuid, String) {
    let id = Uuid::new_v4();
    let response = key_command(
        api,
        admin,
        id,
        create("ERP sync", roles, account_id, Duration::days(30)),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["id"], json!(id.to_string()));
    (id, body["secret"].as_str().unwrap().to_owned())
}

async fn key_rows(stack: &TestStack) -> i64 {
    sqlx::query_scalar("select count(*) from api_keys")
        .fetch_one(&stack.db)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_key_works_on_both_apis_with_its_roles_and_is_named_as_the_actor() {
    let stack = TestStack::new().await;
    let tenant = stack.create_tenant("keys-use").await;
    let server = stack.spawn(&["serve"]).await;
    let api = Api::new(&server);
    let admin = api.login(&tenant).await;
    let (key_id, secret) = new_key(&api, &admin, json!(["Manager"]), None).await;

    // Shown once, stored as its hash only.
    assert!(secret.starts_with("b2bk_"), "{secret}");
    let (stored, created_by): (Vec<u8>, Uuid) =
        sqlx::query_as("select secret_hash, created_by from api_keys where id = $1")
            .bind(key_id)
            .fetch_one(&stack.db)
            .await
            .unwrap();
    assert_eq!(stored, Sha256::digest(secret.as_bytes()).to_vec());
    let admin_id: Uuid = api.me(&admin).await.json::<Value>().await.unwrap()["user_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(created_by, admin_id);

    // The command API: a Manager may open an account; the events name the key.
    let account = Uuid::new_v4();
    let version = api.ok(&secret, account, open_account("Keyed")).await;
    let metadata: Value =
        sqlx::query_scalar("select metadata from events where aggregate_id = $1 and sequence = 1")
            .bind(account.to_string())
            .fetch_one(&stack.db)
            .await
            .unwrap();
    assert_eq!(metadata["user_id"], json!(key_id.to_string()));
    assert_eq!(metadata["api_key_id"], json!(key_id.to_string()));

    // The query API: the key's own identity, the account it wrote, and its audit entry.
    let me = api.graphql(&secret, "{ me { userId roles } }", None).await;
    assert_eq!(
        me["data"]["me"],
        json!({"userId": key_id.to_string(), "roles": ["MANAGER"]})
    );
    let query = format!(
        r#"{{ account(id: "{account}") {{ name }}
             eventHistory(aggregateType: ACCOUNT, aggregateId: "{account}") {{
               edges {{ node {{ userId apiKeyId }} }} }} }}"#
    );
    let seen = api.graphql(&secret, &query, Some((account, version))).await;
    assert_eq!(seen["data"]["account"]["name"], "Keyed", "{seen}");
    assert_eq!(
        seen["data"]["eventHistory"]["edges"][0]["node"],
        json!({"userId": key_id.to_string(), "apiKeyId": key_id.to_string()})
    );

    // A Manager key may not do what a Manager may not (register users).
    let register = json!({
        "type": "RegisterUser", "email": "x@keys-use.test", "display_name": "X",
        "roles": ["Viewer"], "password": "a long enough password"
    });
    let refused = api
        .command(&secret, "users", Uuid::new_v4())
        .json(&register)
        .send()
        .await
        .unwrap();
    problem(refused, StatusCode::FORBIDDEN).await;

    // Listed, for TenantAdmins, with its last use (stamped shortly after the request).
    let listing = "{ apiKeys { id name roles accountId active createdBy lastUsedAt revokedAt } }";
    let listed = eventually("the key's last use is listed", || async {
        let listed = api.graphql(&admin, listing, None).await;
        let node = listed["data"]["apiKeys"][0].clone();
        (!node["lastUsedAt"].is_null()).then_some(node)
    })
    .await;
    assert_eq!(listed["id"], json!(key_id.to_string()));
    assert_eq!(listed["name"], "ERP sync");
    assert_eq!(listed["roles"], json!(["MANAGER"]));
    assert_eq!(listed["active"], true);
    assert_eq!(listed["createdBy"], json!(admin_id.to_string()));
    assert!(listed["revokedAt"].is_null());
    // A key does not list keys, whatever its roles.
    let (_, admin_key) = new_key(&api, &admin, json!(["TenantAdmin"]), None).await;
    let by_key = api.graphql(&admin_key, listing, None).await;
    assert_eq!(
        by_key["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{by_key}"
    );
}

#[tokio::test]
async fn a_revoked_key_is_refused_at_the_next_request_at_another_process() {
    let stack = TestStack::new().await;
    let tenant = stack.create_tenant("keys-revoke").await;
    let (first, second) = (
        stack.spawn(&["command-api"]).await,
        stack.spawn(&["command-api"]).await,
    );
    let (a, b) = (Api::new(&first), Api::new(&second));
    let admin = a.login(&tenant).await;
    let (key_id, secret) = new_key(&a, &admin, json!(["Viewer"]), None).await;
    // Admitted (and cached) at the second process.
    for _ in 0..3 {
        assert_eq!(b.me(&secret).await.status(), StatusCode::OK);
    }

    let revoke = json!({"type": "RevokeApiKey"});
    let revoked = key_command(&a, &admin, key_id, revoke.clone()).await;
    assert_eq!(revoked.status(), StatusCode::OK);
    let revoked: Value = revoked.json().await.unwrap();
    assert!(revoked["secret"].is_null());
    let answer = problem(b.me(&secret).await, StatusCode::UNAUTHORIZED).await;
    assert_eq!(answer["type"], "/problems/unauthorized");
    assert_eq!(a.me(&secret).await.status(), StatusCode::UNAUTHORIZED);

    // Revoking again changes nothing; the row keeps who revoked it and when.
    let again: Value = key_command(&a, &admin, key_id, revoke)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["revoked_at"], revoked["revoked_at"]);
    let (revoked_by, at): (Uuid, chrono::DateTime<Utc>) =
        sqlx::query_as("select revoked_by, revoked_at from api_keys where id = $1")
            .bind(key_id)
            .fetch_one(&stack.db)
            .await
            .unwrap();
    assert_eq!(json!(at), revoked["revoked_at"]);
    assert_eq!(
        Some(revoked_by),
        a.me(&admin).await.json::<Value>().await.unwrap()["user_id"]
            .as_str()
            .map(|s| s.parse().unwrap())
    );
    assert_eq!(b.me(&secret).await.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn expired_malformed_forged_and_other_tenants_keys_get_nothing() {
    let stack = TestStack::new().await;
    let (one, two) = (
        stack.create_tenant("keys-one").await,
        stack.create_tenant("keys-two").await,
    );
    let server = stack.spawn(&["command-api"]).await;
    let api = Api::new(&server);
    let (admin_one, admin_two) = (api.login(&one).await, api.login(&two).await);

    // Expired: valid for two seconds.
    let short = Uuid::new_v4();
    let body = create("short", json!(["Viewer"]), None, Duration::seconds(2));
    let created: Value = key_command(&api, &admin_one, short, body)
        .await
        .json()
        .await
        .unwrap();
    let short_secret = created["secret"].as_str().unwrap().to_owned();
    assert_eq!(api.me(&short_secret).await.status(), StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    problem(api.me(&short_secret).await, StatusCode::UNAUTHORIZED).await;

    // Malformed, unknown, and a real key's id with another secret.
    let (key_id, secret) = new_key(&api, &admin_one, json!(["Manager"]), None).await;
    let forged = format!("b2bk_{}{}", key_id.simple(), "0".repeat(64));
    let unknown = format!("b2bk_{}{}", Uuid::new_v4().simple(), &secret[37..]);
    for bad in [
        "b2bk_",
        "b2bk_not-a-key",
        &secret[..secret.len() - 1],
        &forged,
        &unknown,
    ] {
        let answer = problem(api.me(bad).await, StatusCode::UNAUTHORIZED).await;
        assert_eq!(answer["type"], "/problems/unauthorized", "{bad}");
    }

    // Another tenant's account does not exist for the key, and the other tenant's admin
    // neither sees nor revokes the key.
    let theirs = Uuid::new_v4();
    api.ok(&admin_two, theirs, open_account("Theirs")).await;
    let rename = json!({"type": "UpdateAccountDetails", "name": "Mine now"});
    let refused = api
        .command(&secret, "accounts", theirs)
        .json(&rename)
        .send()
        .await
        .unwrap();
    problem(refused, StatusCode::NOT_FOUND).await;
    let revoke = json!({"type": "RevokeApiKey"});
    problem(
        key_command(&api, &admin_two, key_id, revoke).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    let listed: Option<(i64,)> =
        sqlx::query_as("select 1::int8 from api_keys where id = $1 and revoked_at is null")
            .bind(key_id)
            .fetch_optional(&stack.db)
            .await
            .unwrap();
    assert!(listed.is_some(), "the other tenant's admin revoked the key");
    assert_eq!(api.me(&secret).await.status(), StatusCode::OK);
    // Its tenant's id is its own, whatever was asked.
    let me: Value = api.me(&secret).await.json().await.unwrap();
    assert_eq!(me["tenant_id"], json!(one.id.to_string()));
}

#[tokio::test]
async fn only_a_signed_in_tenant_admin_manages_keys_and_refusals_store_nothing() {
    let stack = TestStack::new().await;
    let tenant = stack.create_tenant("keys-rules").await;
    let server = stack.spawn(&["command-api"]).await;
    let api = Api::new(&server);
    let admin = api.login(&tenant).await;
    api.register(&admin, "m@keys-rules.test", json!(["Manager"]), None)
        .await;
    let manager = api.sign_in(&tenant, "m@keys-rules.test").await;
    let manager = manager["access_token"].as_str().unwrap();
    let (admin_key_id, admin_key) = new_key(&api, &admin, json!(["TenantAdmin"]), None).await;
    let before = key_rows(&stack).await;
    let viewer = || create("k", json!(["Viewer"]), None, Duration::days(1));

    for token in [manager, admin_key.as_str()] {
        problem(
            key_command(&api, token, Uuid::new_v4(), viewer()).await,
            StatusCode::FORBIDDEN,
        )
        .await;
    }
    let revoke = json!({"type": "RevokeApiKey"});
    problem(
        key_command(&api, manager, admin_key_id, revoke.clone()).await,
        StatusCode::FORBIDDEN,
    )
    .await;
    problem(
        key_command(&api, &admin_key, admin_key_id, revoke).await,
        StatusCode::FORBIDDEN,
    )
    .await;

    let cases = [
        (
            create("k", json!(["Viewer"]), None, Duration::seconds(-5)),
            422,
            "/problems/rule-violated/key_expiry_out_of_range",
        ),
        (
            create("k", json!(["Viewer"]), None, Duration::days(800)),
            422,
            "/problems/rule-violated/key_expiry_out_of_range",
        ),
        (
            create("k", json!(["Partner"]), None, Duration::days(1)),
            422,
            "/problems/rule-violated/partner_needs_account",
        ),
        (
            create(
                "k",
                json!(["Viewer"]),
                Some(Uuid::new_v4()),
                Duration::days(1),
            ),
            422,
            "/problems/rule-violated/not_a_partner",
        ),
        (
            create(
                "k",
                json!(["Partner"]),
                Some(Uuid::new_v4()),
                Duration::days(1),
            ),
            404,
            "/problems/not-found",
        ),
        (
            create("k", json!([]), None, Duration::days(1)),
            400,
            "/problems/validation",
        ),
        (
            create("k", json!(["Boss"]), None, Duration::days(1)),
            400,
            "/problems/validation",
        ),
        (
            create("   ", json!(["Viewer"]), None, Duration::days(1)),
            400,
            "/problems/validation",
        ),
        (
            json!({"type": "CreateApiKey", "name": "k", "roles": ["Viewer"]}),
            400,
            "/problems/validation",
        ),
        (
            json!({"type": "DeleteApiKey"}),
            400,
            "/problems/unknown-command",
        ),
    ];
    for (body, status, kind) in cases {
        let status = StatusCode::from_u16(status).unwrap();
        let answer = problem(
            key_command(&api, &admin, Uuid::new_v4(), body.clone()).await,
            status,
        )
        .await;
        assert_eq!(answer["type"], kind, "{body} → {answer}");
    }
    // An id in use, and an Idempotency-Key (a secret is never replayed).
    let taken = key_command(&api, &admin, admin_key_id, viewer()).await;
    let answer = problem(taken, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(answer["type"], "/problems/rule-violated/api_key_exists");
    let keyed = api
        .http
        .post(format!(
            "{}/api/v1/api-keys/{}",
            api.base_url,
            Uuid::new_v4()
        ))
        .bearer_auth(&admin)
        .header("Idempotency-Key", "k-1")
        .json(&viewer())
        .send()
        .await
        .unwrap();
    problem(keyed, StatusCode::BAD_REQUEST).await;
    problem(
        key_command(
            &api,
            &admin,
            Uuid::new_v4(),
            json!({"type": "RevokeApiKey"}),
        )
        .await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(key_rows(&stack).await, before, "a refusal stored a key");
    let revoked: i64 =
        sqlx::query_scalar("select count(*) from api_keys where revoked_at is not null")
            .fetch_one(&stack.db)
            .await
            .unwrap();
    assert_eq!(revoked, 0);
}

#[tokio::test]
async fn a_partner_key_sees_only_its_account_and_counts_against_its_quota() {
    let stack = TestStack::new().await;
    let tenant = stack.create_tenant("keys-partner").await;
    let server = stack.spawn(&["serve"]).await;
    let api = Api::new(&server);
    let admin = api.login(&tenant).await;
    let (own, other) = (Uuid::new_v4(), Uuid::new_v4());
    api.ok(&admin, own, open_account("Own")).await;
    let version = api.ok(&admin, other, open_account("Other")).await;
    let (_, partner) = new_key(&api, &admin, json!(["Partner"]), Some(own)).await;

    let listing = "{ accounts { edges { node { id } } } }";
    let seen = api.graphql(&admin, listing, Some((other, version))).await;
    assert_eq!(
        seen["data"]["accounts"]["edges"].as_array().unwrap().len(),
        2
    );
    let seen = api.graphql(&partner, listing, None).await;
    assert_eq!(
        seen["data"]["accounts"]["edges"],
        json!([{ "node": { "id": own.to_string() } }]),
        "{seen}"
    );
    let other_one = format!(r#"{{ account(id: "{other}") {{ id }} }}"#);
    assert!(api.graphql(&partner, &other_one, None).await["data"]["account"].is_null());
    let rename = json!({"type": "UpdateAccountDetails", "name": "Not mine"});
    let refused = api
        .command(&partner, "accounts", other)
        .json(&rename)
        .send()
        .await
        .unwrap();
    assert!(
        [StatusCode::FORBIDDEN, StatusCode::NOT_FOUND].contains(&refused.status()),
        "{}",
        refused.status()
    );

    // The account's API quota meters its Partner keys as it meters its Partner users.
    let version = api
        .ok(
            &admin,
            own,
            json!({"type": "SetApiQuota", "requests_per_minute": 3}),
        )
        .await;
    let quota = format!(r#"{{ account(id: "{own}") {{ apiQuotaPerMinute }} }}"#);
    api.graphql(&admin, &quota, Some((own, version))).await;
    let status = eventually("the quota refuses the key", || async {
        let response = api.me(&partner).await;
        (response.status() == StatusCode::TOO_MANY_REQUESTS).then_some(response)
    })
    .await;
    let answer = problem(status, StatusCode::TOO_MANY_REQUESTS).await;
    assert!(
        answer["detail"]
            .as_str()
            .unwrap()
            .contains("API quota of 3"),
        "{answer}"
    );
    assert_eq!(api.me(&admin).await.status(), StatusCode::OK);
}
