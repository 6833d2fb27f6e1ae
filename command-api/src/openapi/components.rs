//! The document's shared components: security scheme, parameters, headers and responses.
use serde_json::{json, Map, Value};

use crate::MAX_BODY_BYTES;

/// `$ref`s to the generated schemas of the command reply and of problem details.
pub(super) struct ResponseRefs {
    pub(super) accepted: Value,
    pub(super) problem: Value,
}

pub(super) fn components(schemas: Map<String, Value>, refs: &ResponseRefs) -> Value {
    json!({
        "schemas": schemas,
        "securitySchemes": { "bearerAuth": {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "`Authorization: Bearer <access token>` from `POST /api/v1/auth/login`, \
                or `Authorization: Bearer <API key>` (`b2bk_…`, from `CreateApiKey`). \
                OpenAPI ignores `Authorization` as a header parameter, so it is documented here.",
        }},
        "parameters": parameters(),
        "headers": headers(),
        "responses": responses(refs),
    })
}

fn parameters() -> Value {
    json!({
        "AggregateId": {
            "name": "id", "in": "path", "required": true,
            "description": "The aggregate's id, chosen by the client when it creates it. \
                Another tenant's id answers 404.",
            "schema": { "type": "string", "format": "uuid" },
        },
        "UserId": {
            "name": "id", "in": "path", "required": true,
            "description": "The user's id, chosen by the client when it registers the user; \
                never the nil UUID. Another tenant's id answers 404.",
            "schema": {
                "type": "string",
                "format": "uuid",
                "not": { "const": "00000000-0000-0000-0000-000000000000" },
            },
        },
        "IfMatch": {
            "name": "If-Match", "in": "header", "required": false,
            "description": "Run only if the aggregate is at this version (the `ETag` of an \
                earlier answer); otherwise 409.",
            "schema": { "type": "string", "pattern": "^(W/)?\"?0*[0-9]{1,19}\"?$" },
            "example": "\"3\"",
        },
        "IdempotencyKey": {
            "name": "Idempotency-Key", "in": "header", "required": false,
            "description": "The same key with the same request within 24 hours answers with the \
                first response and appends nothing; with a different request, 422. The key is \
                recorded in the command's own transaction: a retry after any failure either \
                gets the original reply or runs the command once.",
            "schema": { "type": "string", "minLength": 1, "maxLength": 200 },
        },
        "CorrelationId": {
            "name": "X-Correlation-Id", "in": "header", "required": false,
            "description": "Ties the events of several requests together; defaults to the \
                request's own id. Anything but a UUID is a 400.",
            "schema": { "type": "string", "format": "uuid" },
        },
    })
}

fn headers() -> Value {
    json!({
        "ETag": {
            "description": "The aggregate's new version, quoted; send it back as `If-Match`.",
            "schema": { "type": "string" }, "example": "\"4\"",
        },
        "WWW-Authenticate": { "schema": { "type": "string", "const": "Bearer" } },
        "Retry-After": {
            "description": "Seconds to wait before retrying.",
            "schema": { "type": "integer", "minimum": 0 },
        },
    })
}

fn responses(refs: &ResponseRefs) -> Value {
    let problem = |description: &str| {
        json!({
            "description": description,
            "content": { "application/problem+json": { "schema": refs.problem } },
        })
    };
    let mut unauthorized = problem(
        "No, expired or invalid access token, or its session has ended; an unknown, malformed, \
        revoked or expired API key; at sign-in, unknown \
        tenant, e-mail or password; at refresh, an unknown, expired or spent refresh token.",
    );
    unauthorized["headers"] =
        json!({ "WWW-Authenticate": component_ref("headers", "WWW-Authenticate") });
    let mut too_many = problem(
        "The caller's requests-per-minute limit, its account's API quota (Partner users), or a \
        sign-in lock after repeated failures.",
    );
    too_many["headers"] = json!({ "Retry-After": component_ref("headers", "Retry-After") });
    json!({
        "Accepted": {
            "description": "The command ran; `version` is the aggregate's version after it.",
            "headers": { "ETag": component_ref("headers", "ETag") },
            "content": { "application/json": { "schema": refs.accepted } },
        },
        "400": problem("Malformed JSON (or an object that repeats a key), unknown command \
            type, a missing or invalid field (`errors` names it), or an invalid header."),
        "401": unauthorized,
        "403": problem("A role or attribute rule denies the command."),
        "404": problem("No such aggregate in the caller's tenant, or no such collection; \
            also when an `account_id` in the body names none: ids are the \
            client's to choose, so an id that names nothing is well formed, and 404, not 400."),
        "409": problem("Version conflict: `If-Match` did not hold, or a concurrent writer won \
            after retries."),
        "408": problem("The body did not arrive within 10 seconds."),
        "413": problem(&format!("The body is larger than {MAX_BODY_BYTES} bytes.")),
        "415": problem("The body is not `application/json`."),
        "422": problem("A business rule was violated (`type` ends in the rule's code), or an \
            `Idempotency-Key` was reused for a different request. Rules between fields or \
            against the aggregate's state are business rules, which a schema cannot state: a \
            command the document calls valid may still be refused here (the end date not after \
            the start, more decimals than the currency has, a quote that is not a draft)."),
        "429": too_many,
    })
}

pub(super) fn component_ref(kind: &str, name: &str) -> Value {
    json!({ "$ref": format!("#/components/{kind}/{name}") })
}

pub(super) fn error_responses(statuses: &[&str]) -> Map<String, Value> {
    statuses
        .iter()
        .map(|status| (status.to_string(), component_ref("responses", status)))
        .collect()
}
