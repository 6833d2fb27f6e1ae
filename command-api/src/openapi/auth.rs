//! The sign-in routes, with their bodies generated from the handlers' own types.
use schemars::SchemaGenerator;
use serde_json::{json, Map, Value};

use super::components::error_responses;
use crate::routes::auth::{LoginRequest, Me, RefreshRequest, TokenPair};

/// Sign-in routes, with their bodies generated from the handlers' own types.
pub(super) fn auth_paths(
    requests: &mut SchemaGenerator,
    responses: &mut SchemaGenerator,
) -> Map<String, Value> {
    let tokens: Value = responses.subschema_for::<TokenPair>().into();
    let login = requests.subschema_for::<LoginRequest>().into();
    let refresh = requests.subschema_for::<RefreshRequest>().into();
    let me = responses.subschema_for::<Me>().into();
    let mut paths = Map::new();
    paths.insert(
        "/api/v1/auth/login".into(),
        auth_operation(AuthOperation {
            method: "post",
            id: "login",
            summary: "Sign in",
            description: "Wrong credentials and unknown tenants give the same 401. Repeated \
                failures from one client address for one tenant and e-mail lock that source \
                for a while (the same e-mail from another address is not locked): 429 with \
                `Retry-After`, whether or not the e-mail exists. One address gets a limited \
                number of sign-ins per minute across e-mails, and password checks are capped \
                per server (as many as it has cores, a short queue behind them); beyond \
                either, 429 with `Retry-After` too.",
            request: Some(login),
            success: ("200", "Signed in: a new session.", Some(tokens.clone())),
            errors: &["400", "401", "408", "413", "415", "429"],
        }),
    );
    paths.insert(
        "/api/v1/auth/refresh".into(),
        auth_operation(AuthOperation {
            method: "post",
            id: "refresh",
            summary: "Swap a refresh token for a new pair",
            description: "The refresh token is single use. Presenting one that was already \
                used ends its whole session (reuse detection): 401, and the pair issued in its \
                place stops working too.",
            request: Some(refresh),
            success: ("200", "The next pair of the same session.", Some(tokens)),
            errors: &["400", "401", "408", "413", "415"],
        }),
    );
    paths.insert(
        "/api/v1/auth/logout".into(),
        auth_operation(AuthOperation {
            method: "post",
            id: "logout",
            summary: "Sign out",
            description: "Ends the caller's session: its access and refresh tokens stop working \
                at once.",
            request: None,
            success: ("204", "Signed out.", None),
            errors: &["401", "429"],
        }),
    );
    paths.insert(
        "/api/v1/auth/me".into(),
        auth_operation(AuthOperation {
            method: "get",
            id: "me",
            summary: "The signed-in caller",
            description: "Roles and account as stored now.",
            request: None,
            success: ("200", "The caller.", Some(me)),
            errors: &["401", "429"],
        }),
    );
    paths
}

struct AuthOperation<'a> {
    method: &'a str,
    id: &'a str,
    summary: &'a str,
    description: &'a str,
    /// A JSON body; operations without one are called with the caller's bearer token.
    request: Option<Value>,
    success: (&'a str, &'a str, Option<Value>),
    errors: &'a [&'a str],
}

fn auth_operation(op: AuthOperation) -> Value {
    let (status, description, body) = op.success;
    let mut success = json!({ "description": description });
    if let Some(schema) = body {
        success["content"] = json_content(schema);
    }
    let mut answers = error_responses(op.errors);
    answers.insert(status.into(), success);
    let mut operation = json!({
        "operationId": op.id,
        "summary": op.summary,
        "description": op.description,
        "tags": ["auth"],
        "responses": answers,
    });
    match op.request {
        Some(schema) => {
            operation["security"] = json!([]);
            operation["requestBody"] = json!({ "required": true, "content": json_content(schema) });
        }
        None => operation["security"] = json!([{ "bearerAuth": [] }]),
    }
    json!({ op.method: operation })
}

fn json_content(schema: Value) -> Value {
    json!({ "application/json": { "schema": schema } })
}
