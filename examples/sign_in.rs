//! Signs in and shows when the access token expires; the token then names its user.
//!
//! `cargo run --example sign_in` against `make run` (see `support` for the variables).
mod support;

use anyhow::ensure;
use reqwest::StatusCode;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let server = support::Server::from_env();
    let signed_in = server.sign_in().await?;
    // Access tokens are short-lived (15 minutes at most); a client refreshes before this.
    ensure!(
        (1..=900).contains(&signed_in.expires_in),
        "an access token for {} s",
        signed_in.expires_in
    );
    let expires_at = chrono::Utc::now() + chrono::Duration::seconds(signed_in.expires_in);
    println!(
        "signed in as {} of {}; the access token expires in {} s, at {}",
        server.email,
        server.tenant,
        signed_in.expires_in,
        expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );

    let me = server
        .http
        .get(format!("{}/api/v1/auth/me", server.url))
        .bearer_auth(&signed_in.access_token)
        .send()
        .await?;
    let me = support::expect(me, StatusCode::OK).await?;
    ensure!(
        me["email"].as_str().map(str::to_lowercase) == Some(server.email.to_lowercase())
            && me["tenant"] == server.tenant.as_str(),
        "the token names someone else: {me}"
    );
    println!(
        "GET /api/v1/auth/me: user {} with roles {}",
        me["user_id"], me["roles"]
    );
    Ok(())
}
