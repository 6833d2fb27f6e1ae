//! The sign-in routes, with their bodies generated from the handlers' own types.
use schemars::SchemaGenerator;
use serde_json::{json, Map, Value};

use super::components::error_responses;
use crate::routes::auth::{
    LoginAnswer, LoginRequest, Me, RefreshRequest, TokenPair, TotpConfirmRequest, TotpConfirmed,
    TotpEnrollRequest, TotpEnrolment, TotpLoginRequest,
};

/// Sign-in routes, with their bodies generated from the handlers' own types.
pub(super) fn auth_paths(
    requests: &mut SchemaGenerator,
    responses: &mut SchemaGenerator,
) -> Map<String, Value> {
    let tokens: Value = responses.subschema_for::<TokenPair>().into();
    let login = requests.subschema_for::<LoginRequest>().into();
    let refresh = requests.subschema_for::<RefreshRequest>().into();
    let me = responses.subschema_for::<Me>().into();
    let login_answer = responses.subschema_for::<LoginAnswer>().into();
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
                either, 429 with `Retry-After` too. When the user has enabled two-factor \
                sign-in, or the tenant requires it for one of their roles, a correct password \
                answers `{\"mfa_required\": true, \"mfa_token\": …}` instead of a session: \
                complete it at `/api/v1/auth/login/totp` (or, when `enrollment_required`, \
                through `/api/v1/auth/totp/enroll` and `/confirm` with the `mfa_token`).",
            request: Some(login),
            success: (
                "200",
                "Signed in (a new session), or a second factor is needed.",
                Some(login_answer),
            ),
            errors: &["400", "401", "408", "413", "415", "429"],
        }),
    );
    paths.insert(
        "/api/v1/auth/login/totp".into(),
        auth_operation(AuthOperation {
            method: "post",
            id: "loginTotp",
            summary: "Complete a sign-in with a TOTP or recovery code",
            description: "`code` is the authenticator's current 6-digit code (each time step \
                is accepted once: a code cannot be replayed) or an unused recovery code (each \
                works once). Wrong codes count toward the same sign-in lockout as wrong \
                passwords (429 with `Retry-After`). An unknown, expired (after 5 minutes) or \
                used `mfa_token`, or a wrong code: 401.",
            request: Some(requests.subschema_for::<TotpLoginRequest>().into()),
            success: ("200", "Signed in: a new session.", Some(tokens.clone())),
            errors: &["400", "401", "408", "413", "415", "429"],
        }),
    );
    let enrol_security = json!([{ "bearerAuth": [] }, {}]);
    let mut enroll = auth_operation(AuthOperation {
        method: "post",
        id: "totpEnroll",
        summary: "Start enrolling in two-factor sign-in (TOTP)",
        description: "A new secret, shown this once as an `otpauth://` URI (RFC 6238: SHA-1, 6 \
            digits, 30 s). Send the session's access token, or, when sign-in answered \
            `enrollment_required`, its `mfa_token` in the body. Enrolling again before \
            confirming replaces the secret; once confirmed, 422 `totp_already_enabled`. An API \
            key may not enrol (403).",
        request: Some(requests.subschema_for::<TotpEnrollRequest>().into()),
        success: (
            "200",
            "The new secret.",
            Some(responses.subschema_for::<TotpEnrolment>().into()),
        ),
        errors: &["400", "401", "403", "408", "413", "415", "422", "429"],
    });
    enroll["post"]["security"] = enrol_security.clone();
    paths.insert("/api/v1/auth/totp/enroll".into(), enroll);
    let mut confirm = auth_operation(AuthOperation {
        method: "post",
        id: "totpConfirm",
        summary: "Confirm the enrolment with a first code",
        description: "Enables two-factor sign-in and answers ten single-use recovery codes, \
            shown this once. With a session: a wrong code is 422 `totp_code_wrong`, no pending \
            enrolment 404. With the sign-in's `mfa_token`: a wrong code is 401 and counts toward \
            the sign-in lockout, and a right one completes the sign-in (`session`).",
        request: Some(requests.subschema_for::<TotpConfirmRequest>().into()),
        success: (
            "200",
            "Enabled: the recovery codes, and the session when a sign-in was completed.",
            Some(responses.subschema_for::<TotpConfirmed>().into()),
        ),
        errors: &[
            "400", "401", "403", "404", "408", "413", "415", "422", "429",
        ],
    });
    confirm["post"]["security"] = enrol_security;
    paths.insert("/api/v1/auth/totp/confirm".into(), confirm);
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
