//! Sends a command the safe way: with an `Idempotency-Key`, so a retry cannot apply it twice,
//! and with `If-Match`, so it applies only to the version the client last saw.
//!
//! `cargo run --example send_command` against `make run` (see `support` for the variables).
mod support;

use anyhow::ensure;
use reqwest::StatusCode;
use serde_json::json;
use support::{expect, version};
use uuid::Uuid;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let server = support::Server::from_env();
    let token = server.sign_in().await?.access_token;
    let (id, opened) = server.open_account(&token, "Initech").await?;
    println!("opened account {id}: version {opened}");

    // A key per intended change, kept until the reply arrives, and sent again with any retry.
    let key = Uuid::new_v4().to_string();
    let change_tier = json!({"type": "ChangeTier", "tier": "Enterprise"});
    let send = |body: &serde_json::Value, if_match: u64| {
        server
            .command(&token, "accounts", id)
            .header("Idempotency-Key", &key)
            .header("If-Match", format!("\"{if_match}\""))
            .json(body)
            .send()
    };

    let first = send(&change_tier, opened).await?;
    let etag = first.headers().get("etag").cloned();
    let first = expect(first, StatusCode::OK).await?;
    let changed = version(&first)?;
    ensure!(changed == opened + 1, "one event, one version: {first}");
    ensure!(
        etag.is_some_and(|etag| etag == format!("\"{changed}\"").as_str()),
        "the ETag is the new version"
    );
    println!("ChangeTier with If-Match \"{opened}\": {first}");

    // The retry finds the first reply stored under its key: answered again, nothing appended.
    let retry = expect(send(&change_tier, opened).await?, StatusCode::OK).await?;
    ensure!(retry == first, "a retry answers as the first time: {retry}");
    println!("the same request with the same key again: {retry} (replayed)");

    // The key belongs to that request: with another body it is refused.
    let other = json!({"type": "ChangeTier", "tier": "Standard"});
    let reused = expect(
        send(&other, opened).await?,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await?;
    ensure!(
        reused["type"] == "/problems/rule-violated/idempotency_key_reused",
        "{reused}"
    );
    println!("the key with another command: 422 {}", reused["type"]);

    // Without a key, a command on a version the account has moved past is a conflict.
    let stale = server
        .command(&token, "accounts", id)
        .header("If-Match", format!("\"{opened}\""))
        .json(&other)
        .send()
        .await?;
    let stale = expect(stale, StatusCode::CONFLICT).await?;
    println!(
        "If-Match \"{opened}\" on version {changed}: 409 {}",
        stale["detail"]
    );
    Ok(())
}
