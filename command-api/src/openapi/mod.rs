//! The OpenAPI 3.1 document served at `GET /api/v1/openapi.json`. Every schema in it is generated
//! from the Rust types the API parses and answers with, so the document cannot drift from the
//! code: add a command variant and it appears here.
use std::sync::OnceLock;

use aggregates::limits::{EMAIL_FIELDS, EMAIL_MAX, TEXT_FIELDS};
use aggregates::CommandSet;
use event_store::{BusAggregate, Collection, PerAggregate};
use schemars::generate::{Contract, SchemaSettings};
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{json, Map, Value};

use crate::error::Problem;
use crate::routes::auth::{LoginRequest, Me, RefreshRequest, TokenPair};
use crate::routes::commands::Accepted;
use crate::MAX_BODY_BYTES;
use auth::{MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS};

/// Where schemars puts the schemas of types the commands refer to (`Tier`, `Role`, ...): the
/// document's own components, so their `$ref`s resolve without rewriting.
const DEFINITIONS_PATH: &str = "/components/schemas";
const SCHEMA_REF_PREFIX: &str = "#/components/schemas/";

/// Text the aggregates accept: a non-blank character, no control character inside (whitespace
/// around it is trimmed). Lengths come from `aggregates::limits`.
/// Whitespace as Rust trims it (Unicode White_Space), spelled out: regex dialects disagree on
/// what `\s` holds (Python counts U+001C to U+001F, which are control characters to us).
const TEXT_PATTERN: &str = concat!(
    r"^[\t-\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*",
    r"[^\u0000-\u001F\u007F-\u009F]*",
    r"[^\t-\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000\u0000-\u001F\u007F-\u009F]",
    r"[^\u0000-\u001F\u007F-\u009F]*",
    r"[\t-\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*$"
);
/// An address `Email::parse` accepts: one `@`, something before it, a domain with a dot that
/// neither starts nor ends it, no whitespace or control character inside.
const EMAIL_PATTERN: &str = concat!(
    r"^[\t-\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*",
    r"[^@\s\u0000-\u001F\u007F-\u009F\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]+@",
    r"[^@.\s\u0000-\u001F\u007F-\u009F\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]",
    r"[^@\s\u0000-\u001F\u007F-\u009F\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*\.",
    r"[^@\s\u0000-\u001F\u007F-\u009F\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*",
    r"[^@.\s\u0000-\u001F\u007F-\u009F\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]",
    r"[\t-\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*$"
);
const COUNTRY_PATTERN: &str = concat!(
    r"^[\t-\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*",
    r"[A-Za-z]{2}",
    r"[\t-\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*$"
);
const CURRENCY_PATTERN: &str = concat!(
    r"^[\t-\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*",
    r"[A-Za-z]{3}",
    r"[\t-\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*$"
);

/// The wire form of every decimal (`"1250.00"`). The command types mark such fields with the
/// registry format `decimal`; the pattern is added here so it is written once.
const DECIMAL_PATTERN: &str = r"^-?[0-9]+(\.[0-9]+)?$";

/// One command collection: its path segment, aggregate type, and commands in wire form.
struct CollectionCommands {
    name: &'static str,
    aggregate: &'static str,
    /// `(command name, flat schema)`, in declaration order.
    commands: Vec<(String, Value)>,
}

/// The document, built once on first use.
pub fn document() -> &'static Value {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    DOCUMENT.get_or_init(build)
}

fn build() -> Value {
    let mut requests = generator(Contract::Deserialize);
    let mut responses = generator(Contract::Serialize);
    let collections = collections(&mut requests);
    let mut schemas = Map::new();
    for collection in &collections {
        for (name, schema) in &collection.commands {
            add_schema(&mut schemas, name, schema.clone());
        }
    }
    let auth = auth_paths(&mut requests, &mut responses);
    let refs = ResponseRefs {
        accepted: responses.subschema_for::<Accepted>().into(),
        problem: responses.subschema_for::<Problem>().into(),
    };
    // The types referred to so far (`Tier`, `Role`, `Problem`, ...) were collected as
    // definitions at `DEFINITIONS_PATH`; they become the other component schemas.
    for generator in [&mut requests, &mut responses] {
        for (name, schema) in generator.take_definitions(true) {
            add_schema(&mut schemas, &name, schema);
        }
    }
    let mut document = json!({
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": info(),
        "servers": [{ "url": "/" }],
        "tags": tags(&collections),
        "paths": paths(&collections, auth),
        "components": components(schemas, &refs),
    });
    add_decimal_patterns(&mut document);
    document
}

fn tags(collections: &[CollectionCommands]) -> Vec<Value> {
    let commands = collections.iter().map(
        |c| json!({ "name": c.name, "description": format!("Commands on {}s.", c.aggregate) }),
    );
    std::iter::once(json!({ "name": "auth", "description": "Signing in." }))
        .chain(commands)
        .collect()
}

fn generator(contract: Contract) -> SchemaGenerator {
    let mut settings = SchemaSettings::draft2020_12();
    settings.definitions_path = DEFINITIONS_PATH.into();
    settings.meta_schema = None;
    settings.contract = contract;
    settings.into_generator()
}

/// The five command collections, with `users` adjusted for what `routes::users` does before the
/// aggregate sees the command.
fn collections(generator: &mut SchemaGenerator) -> Vec<CollectionCommands> {
    Collection::ALL
        .into_iter()
        .map(|collection| {
            let mut commands = collection.dispatch(Document {
                generator: &mut *generator,
                collection,
            });
            if collection == Collection::Users {
                describe_user_extras(&mut commands);
            }
            commands
        })
        .collect()
}

/// Documents the commands of the aggregate a collection names.
struct Document<'a> {
    generator: &'a mut SchemaGenerator,
    collection: Collection,
}

impl PerAggregate for Document<'_> {
    type Output = CollectionCommands;

    fn run<A: BusAggregate>(self) -> CollectionCommands {
        collection::<A::Body>(self.generator, self.collection, A::TYPE)
    }
}

/// The commands a client may send: the system's own (`CommandSet::SYSTEM_ONLY`) are left out.
fn collection<C: JsonSchema + CommandSet>(
    generator: &mut SchemaGenerator,
    collection: Collection,
    aggregate: &'static str,
) -> CollectionCommands {
    let tagged = C::json_schema(generator).to_value();
    let variants = tagged["oneOf"].as_array().cloned().unwrap_or_default();
    let mut commands: Vec<_> = variants.iter().map(flatten_variant).collect();
    for (name, schema) in &mut commands {
        state_text_rules(schema);
        if let Some((_, fields)) = C::AT_LEAST_ONE_OF.iter().find(|(c, _)| c == name) {
            schema["anyOf"] = fields
                .iter()
                .map(|f| json!({ "required": [f], "properties": { *f: { "not": { "type": "null" } } } }))
                .collect();
        }
    }
    for system in C::SYSTEM_ONLY {
        assert!(
            commands.iter().any(|(command, _)| command == system),
            "{system} is listed as system-only but is no {aggregate} command"
        );
    }
    CollectionCommands {
        name: collection.as_str(),
        aggregate,
        commands: commands
            .into_iter()
            .filter(|(command, _)| !C::SYSTEM_ONLY.contains(&command.as_str()))
            .collect(),
    }
}

/// Turns one externally tagged variant, `{"OpenAccount": {fields}}`, into the flat wire form
/// `{"type": "OpenAccount", fields}` that `routes::commands` parses.
fn flatten_variant(variant: &Value) -> (String, Value) {
    let (name, inner) = variant["properties"]
        .as_object()
        .and_then(|properties| properties.iter().next())
        .expect("externally tagged variants are objects with one property");
    let mut properties = Map::new();
    properties.insert(
        "type".into(),
        json!({ "type": "string", "const": name, "description": "The command's name." }),
    );
    if let Some(fields) = inner["properties"].as_object() {
        properties.extend(fields.clone());
    }
    let mut required = vec![json!("type")];
    if let Some(fields) = inner["required"].as_array() {
        required.extend(fields.iter().cloned());
    }
    let mut flat = json!({
        "title": name,
        "type": "object",
        "properties": properties,
        "required": required,
    });
    // `deny_unknown_fields` shows on the inner object; a doc comment on the variant.
    if let Some(closed) = inner.get("additionalProperties") {
        flat["additionalProperties"] = closed.clone();
    }
    if let Some(description) = variant.get("description").or(inner.get("description")) {
        flat["description"] = description.clone();
    }
    (name.clone(), flat)
}

/// States on each string field what the aggregates enforce on it, by the field's name, so a
/// client built from this document sends what is accepted.
fn state_text_rules(schema: &mut Value) {
    let Some(properties) = schema["properties"].as_object_mut() else {
        return;
    };
    for (name, field) in properties.iter_mut() {
        let rules = match name.as_str() {
            "country" => json!({ "pattern": COUNTRY_PATTERN }),
            "currency" => json!({ "pattern": CURRENCY_PATTERN }),
            "roles" => json!({ "minItems": 1 }),
            email if EMAIL_FIELDS.contains(&email) => {
                json!({ "pattern": EMAIL_PATTERN, "maxLength": EMAIL_MAX })
            }
            text => match TEXT_FIELDS.iter().find(|(field, _)| *field == text) {
                Some((_, max)) => json!({ "pattern": TEXT_PATTERN, "maxLength": max }),
                None => continue,
            },
        };
        if let (Some(field), Some(rules)) = (field.as_object_mut(), rules.as_object()) {
            field.extend(rules.clone());
        }
    }
}

/// `RegisterUser` takes its `user_id` from the path (the body may repeat it), and it and
/// `ChangePassword` carry a password the aggregate never sees.
fn describe_user_extras(users: &mut CollectionCommands) {
    let password = json!({
        "type": "string",
        "minLength": MIN_PASSWORD_CHARS,
        "maxLength": MAX_PASSWORD_CHARS,
        "writeOnly": true,
        "description": "Hashed into the credentials table; never stored in an event.",
    });
    for (name, schema) in &mut users.commands {
        match name.as_str() {
            "RegisterUser" => {
                schema["properties"]["password"] = password.clone();
                // The id is the path's; a body may repeat it, which this document leaves out.
                if let Some(properties) = schema["properties"].as_object_mut() {
                    properties.remove("user_id");
                }
                if let Some(required) = schema["required"].as_array_mut() {
                    required.retain(|field| field != "user_id");
                }
            }
            "ChangePassword" => {
                schema["properties"]["password"] = password.clone();
                if let Some(required) = schema["required"].as_array_mut() {
                    required.push(json!("password"));
                }
            }
            _ => {}
        }
    }
}

/// Two types may share a name only if they generate the same schema; anything else would make
/// one `$ref` mean two things.
fn add_schema(schemas: &mut Map<String, Value>, name: &str, schema: Value) {
    match schemas.get(name) {
        Some(existing) if existing != &schema => {
            panic!("two schemas named `{name}`: {existing} and {schema}")
        }
        _ => schemas.insert(name.to_owned(), schema),
    };
}

fn add_decimal_patterns(value: &mut Value) {
    match value {
        Value::Object(object) => {
            if object.get("format") == Some(&json!("decimal")) {
                object.insert("pattern".into(), json!(DECIMAL_PATTERN));
            }
            object.values_mut().for_each(add_decimal_patterns);
        }
        Value::Array(items) => items.iter_mut().for_each(add_decimal_patterns),
        _ => {}
    }
}

fn info() -> Value {
    json!({
        "title": "b2b command API",
        "version": env!("CARGO_PKG_VERSION"),
        "description": "Commands change aggregates: `POST /api/v1/{collection}/{id}` with \
            `{\"type\": \"<Command>\", ...fields}`. Money and other decimals travel as strings \
            (`\"1250.00\"`), dates as ISO 8601, ids as UUID strings. Nothing is appended on any \
            error. Reads go through GraphQL at `/graphql`, which this document does not cover.",
    })
}

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("{SCHEMA_REF_PREFIX}{name}") })
}

fn component_ref(kind: &str, name: &str) -> Value {
    json!({ "$ref": format!("#/components/{kind}/{name}") })
}

fn paths(collections: &[CollectionCommands], auth: Map<String, Value>) -> Value {
    let mut paths = auth;
    for collection in collections {
        paths.insert(
            format!("/api/v1/{}/{{id}}", collection.name),
            json!({ "post": command_operation(collection) }),
        );
    }
    paths.insert("/api/v1/openapi.json".into(), openapi_path());
    Value::Object(paths)
}

fn command_operation(collection: &CollectionCommands) -> Value {
    let names: Vec<&str> = collection
        .commands
        .iter()
        .map(|(n, _)| n.as_str())
        .collect();
    let mapping: Map<String, Value> = names
        .iter()
        .map(|n| (n.to_string(), json!(format!("{SCHEMA_REF_PREFIX}{n}"))))
        .collect();
    let mut responses = error_responses(&[
        "400", "401", "403", "404", "408", "409", "413", "415", "422", "429",
    ]);
    responses.insert("200".into(), component_ref("responses", "Accepted"));
    let parameters = ["AggregateId", "IfMatch", "IdempotencyKey", "CorrelationId"]
        .map(|p| component_ref("parameters", p));
    json!({
        "operationId": format!("run{}Command", collection.aggregate),
        "summary": format!("Run one command on a {}", collection.aggregate),
        "description": format!(
            "The `id` is chosen by the client when the {} is created. Commands: {}.",
            collection.aggregate,
            names.join(", ")
        ),
        "tags": [collection.name],
        "security": [{ "bearerAuth": [] }],
        "parameters": parameters,
        "requestBody": {
            "required": true,
            "content": { "application/json": { "schema": {
                "oneOf": names.iter().map(|n| schema_ref(n)).collect::<Vec<_>>(),
                "discriminator": { "propertyName": "type", "mapping": mapping },
            }}},
        },
        "responses": responses,
    })
}

fn error_responses(statuses: &[&str]) -> Map<String, Value> {
    statuses
        .iter()
        .map(|status| (status.to_string(), component_ref("responses", status)))
        .collect()
}

/// Sign-in routes, with their bodies generated from the handlers' own types.
fn auth_paths(
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

fn openapi_path() -> Value {
    json!({ "get": {
        "operationId": "openapi",
        "summary": "This document",
        "security": [],
        "responses": { "200": {
            "description": "The OpenAPI 3.1 document.",
            "content": { "application/json": { "schema": { "type": "object" } } },
        }},
    }})
}

/// `$ref`s to the generated schemas of the command reply and of problem details.
struct ResponseRefs {
    accepted: Value,
    problem: Value,
}

fn components(schemas: Map<String, Value>, refs: &ResponseRefs) -> Value {
    json!({
        "schemas": schemas,
        "securitySchemes": { "bearerAuth": {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "`Authorization: Bearer <access token>` from `POST /api/v1/auth/login`. \
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
        "IfMatch": {
            "name": "If-Match", "in": "header", "required": false,
            "description": "Run only if the aggregate is at this version (the `ETag` of an \
                earlier answer); otherwise 409.",
            "schema": { "type": "string", "pattern": "^(W/)?\"?[0-9]+\"?$" },
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
        "No, expired or invalid access token, or its session has ended; at sign-in, unknown \
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
        "404": problem("No such aggregate in the caller's tenant, or no such collection."),
        "409": problem("Version conflict: `If-Match` did not hold, or a concurrent writer won \
            after retries."),
        "408": problem("The body did not arrive within 10 seconds."),
        "413": problem(&format!("The body is larger than {MAX_BODY_BYTES} bytes.")),
        "415": problem("The body is not `application/json`."),
        "422": problem("A business rule was violated (`type` ends in the rule's code), or an \
            `Idempotency-Key` was reused for a different request."),
        "429": too_many,
    })
}

#[cfg(test)]
mod tests;
