//! What the examples share: where the server is and whom to sign in as, read from the
//! environment with `make run`'s demo tenant as the defaults, and the requests every client
//! makes the same way.
//!
//! | variable | default |
//! |---|---|
//! | `B2B_URL` | `http://127.0.0.1:8080` |
//! | `B2B_TENANT` | `demo` |
//! | `B2B_EMAIL` | `admin@demo.test` |
//! | `B2B_PASSWORD` | `demo-password-123` |
// Each example uses a part of it.
#![allow(dead_code)]

use anyhow::{ensure, Context};
use reqwest::{RequestBuilder, Response, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

pub struct Server {
    pub http: reqwest::Client,
    pub url: String,
    pub tenant: String,
    pub email: String,
    password: String,
}

/// The login reply (`POST /api/v1/auth/login`).
pub struct SignedIn {
    pub access_token: String,
    pub expires_in: i64,
}

impl Server {
    pub fn from_env() -> Self {
        Self {
            http: reqwest::Client::new(),
            url: env("B2B_URL", "http://127.0.0.1:8080")
                .trim_end_matches('/')
                .to_owned(),
            tenant: env("B2B_TENANT", "demo"),
            email: env("B2B_EMAIL", "admin@demo.test"),
            password: env("B2B_PASSWORD", "demo-password-123"),
        }
    }

    pub async fn sign_in(&self) -> anyhow::Result<SignedIn> {
        let credentials = json!({
            "tenant": self.tenant,
            "email": self.email,
            "password": self.password,
        });
        let response = self
            .http
            .post(format!("{}/api/v1/auth/login", self.url))
            .json(&credentials)
            .send()
            .await
            .with_context(|| format!("no answer from {}", self.url))?;
        let reply = expect(response, StatusCode::OK).await?;
        ensure!(
            reply["token_type"] == "Bearer",
            "not a bearer token: {reply}"
        );
        Ok(SignedIn {
            access_token: text(&reply["access_token"])?,
            expires_in: reply["expires_in"].as_i64().context("no expires_in")?,
        })
    }

    /// `POST /api/v1/{collection}/{id}`, signed; the caller adds headers and the command.
    pub fn command(&self, token: &str, collection: &str, id: Uuid) -> RequestBuilder {
        self.http
            .post(format!("{}/api/v1/{collection}/{id}", self.url))
            .bearer_auth(token)
    }

    /// Opens an account with a new id and returns the id and the version it is at.
    pub async fn open_account(&self, token: &str, name: &str) -> anyhow::Result<(Uuid, u64)> {
        let id = Uuid::new_v4();
        let command = json!({
            "type": "OpenAccount",
            "name": name,
            "legal_name": format!("{name} GmbH"),
            "country": "DE",
            "billing_email": "ap@example.test",
            "currency": "EUR",
            "tier": "Gold",
        });
        let response = self
            .command(token, "accounts", id)
            .json(&command)
            .send()
            .await?;
        let reply = expect(response, StatusCode::OK).await?;
        Ok((id, version(&reply)?))
    }
}

/// The reply's JSON body, if its status is `status`; otherwise an error showing what came.
pub async fn expect(response: Response, status: StatusCode) -> anyhow::Result<Value> {
    let got = response.status();
    let body = response.text().await?;
    ensure!(got == status, "expected {status}, got {got}: {body}");
    serde_json::from_str(&body).with_context(|| format!("not JSON: {body}"))
}

/// A command reply's `version`.
pub fn version(reply: &Value) -> anyhow::Result<u64> {
    reply["version"]
        .as_u64()
        .with_context(|| format!("no version in {reply}"))
}

fn text(value: &Value) -> anyhow::Result<String> {
    Ok(value.as_str().context("not a string")?.to_owned())
}

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}
