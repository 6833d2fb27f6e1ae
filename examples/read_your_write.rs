//! Reads a write back through GraphQL as soon as it is made: the command's reply names the
//! version, and `X-Await-Version: <id>@<version>` makes the query wait until the read models
//! have it (or answer `STALE_READ`), so the client never sees the world before its own write.
//!
//! `cargo run --example read_your_write` against `make run` (see `support` for the variables).
mod support;

use anyhow::{ensure, Context};
use reqwest::StatusCode;
use serde_json::json;

const ACCOUNT: &str = "query Account($id: UUID!) { account(id: $id) { id name tier version } }";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let server = support::Server::from_env();
    let token = server.sign_in().await?.access_token;
    let (id, version) = server.open_account(&token, "Umbrella").await?;
    println!("opened account {id}: version {version}");

    let response = server
        .http
        .post(format!("{}/graphql", server.url))
        .bearer_auth(&token)
        .header("X-Await-Version", format!("{id}@{version}"))
        .json(&json!({"query": ACCOUNT, "variables": {"id": id}}))
        .send()
        .await?;
    let body = support::expect(response, StatusCode::OK).await?;
    ensure!(body["errors"].is_null(), "the query failed: {body}");
    let account = &body["data"]["account"];
    let read = account["version"]
        .as_u64()
        .context("no account read back")?;
    ensure!(
        read >= version && account["name"] == "Umbrella",
        "read an older account: {account}"
    );
    println!("read back at version {read}: {account}");
    Ok(())
}
