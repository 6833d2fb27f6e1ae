//! The OpenAPI 3.1 document served at `GET /api/v1/openapi.json`. Every schema in it is generated
//! from the Rust types the API parses and answers with, so the document cannot drift from the
//! code: add a command variant and it appears here.
mod api_keys;
mod auth;
mod commands;
mod components;
mod field_rules;
mod webhooks;

use std::sync::OnceLock;

use schemars::generate::{Contract, SchemaSettings};
use schemars::SchemaGenerator;
use serde_json::{json, Map, Value};

use self::api_keys::{key_commands, key_path};
use self::auth::auth_paths;
use self::commands::{collections, command_operation, CollectionCommands};
use self::components::{components, ResponseRefs};
use self::webhooks::{webhook_commands, webhook_path};
use crate::error::Problem;
use crate::routes::commands::Accepted;

/// Where schemars puts the schemas of types the commands refer to (`Tier`, `Role`, ...): the
/// document's own components, so their `$ref`s resolve without rewriting.
const DEFINITIONS_PATH: &str = "/components/schemas";
const SCHEMA_REF_PREFIX: &str = "#/components/schemas/";

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
    let key_commands = key_commands(&mut requests);
    for (name, schema) in &key_commands {
        add_schema(&mut schemas, name, schema.clone());
    }
    let webhook_commands = webhook_commands(&mut requests);
    for (name, schema) in &webhook_commands {
        add_schema(&mut schemas, name, schema.clone());
    }
    let mut auth = auth_paths(&mut requests, &mut responses);
    auth.insert(
        "/api/v1/webhooks/{id}".into(),
        webhook_path(&webhook_commands, &mut responses),
    );
    auth.insert(
        "/api/v1/api-keys/{id}".into(),
        key_path(&key_commands, &mut responses),
    );
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
    let components = components(schemas, &refs);
    json!({
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": info(),
        "servers": [{ "url": "/" }],
        "tags": tags(&collections),
        "paths": paths(&collections, auth, &components["responses"]["Accepted"]),
        "components": components,
    })
}

fn tags(collections: &[CollectionCommands]) -> Vec<Value> {
    let commands = collections.iter().map(
        |c| json!({ "name": c.name, "description": format!("Commands on {}s.", c.aggregate) }),
    );
    std::iter::once(json!({ "name": "auth", "description": "Signing in." }))
        .chain(std::iter::once(json!({
            "name": "api-keys",
            "description": "API keys for machine clients.",
        })))
        .chain(std::iter::once(json!({
            "name": "webhooks",
            "description": "Outgoing webhooks: endpoints that receive the tenant's events.",
        })))
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

fn paths(collections: &[CollectionCommands], auth: Map<String, Value>, accepted: &Value) -> Value {
    let mut paths = auth;
    for collection in collections {
        paths.insert(
            format!("/api/v1/{}/{{id}}", collection.name),
            json!({ "post": command_operation(collection, accepted) }),
        );
    }
    paths.insert("/api/v1/openapi.json".into(), openapi_path());
    Value::Object(paths)
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

#[cfg(test)]
mod tests;
