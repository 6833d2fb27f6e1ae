//! The command collections: each aggregate's commands in the flat wire form the route parses,
//! and the operation that runs them.
use aggregates::CommandSet;
use auth::{MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS};
use event_store::{BusAggregate, Collection, PerAggregate};
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{json, Map, Value};

use super::components::{component_ref, error_responses};
use super::field_rules::state_field_rules;
use super::{schema_ref, SCHEMA_REF_PREFIX};

/// One command collection: its path segment, aggregate type, and commands in wire form.
pub(super) struct CollectionCommands {
    pub(super) name: &'static str,
    pub(super) aggregate: &'static str,
    /// `(command name, flat schema)`, in declaration order.
    pub(super) commands: Vec<(String, Value)>,
}

/// The five command collections, with `users` adjusted for what `routes::users` does before the
/// aggregate sees the command.
pub(super) fn collections(generator: &mut SchemaGenerator) -> Vec<CollectionCommands> {
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
    let commands: Vec<_> = variants.iter().map(flatten_variant).collect();
    for system in C::SYSTEM_ONLY {
        assert!(
            commands.iter().any(|(command, _)| command == system),
            "{system} is listed as system-only but is no {aggregate} command"
        );
    }
    let mut commands: Vec<_> = commands
        .into_iter()
        .filter(|(command, _)| !C::SYSTEM_ONLY.contains(&command.as_str()))
        .collect();
    for (name, schema) in &mut commands {
        state_field_rules(schema);
        if let Some((_, fields)) = C::AT_LEAST_ONE_OF.iter().find(|(c, _)| c == name) {
            schema["anyOf"] = fields
                .iter()
                .map(|f| json!({ "required": [f], "properties": { *f: { "not": { "type": "null" } } } }))
                .collect();
        }
    }
    CollectionCommands {
        name: collection.as_str(),
        aggregate,
        commands,
    }
}

/// A tagged command enum (API keys, webhooks) in wire form (`(name, flat schema)`), each with
/// the field rules the route checks against state.
pub(super) fn tagged_commands<C: JsonSchema>(
    requests: &mut SchemaGenerator,
) -> Vec<(String, Value)> {
    let tagged = C::json_schema(requests).to_value();
    let variants = tagged["oneOf"].as_array().cloned().unwrap_or_default();
    let mut commands: Vec<_> = variants.iter().map(flatten_variant).collect();
    for (_, schema) in &mut commands {
        state_field_rules(schema);
    }
    commands
}

/// A request body that is one of `commands`, told apart by their `type`.
pub(super) fn one_of_commands(commands: &[(String, Value)]) -> Value {
    let mapping: Map<String, Value> = commands
        .iter()
        .map(|(n, _)| (n.clone(), json!(format!("{SCHEMA_REF_PREFIX}{n}"))))
        .collect();
    json!({
        "required": true,
        "content": { "application/json": { "schema": {
            "oneOf": commands.iter().map(|(n, _)| schema_ref(n)).collect::<Vec<_>>(),
            "discriminator": { "propertyName": "type", "mapping": mapping },
        }}},
    })
}

/// Turns one externally tagged variant, `{"OpenAccount": {fields}}`, into the flat wire form
/// `{"type": "OpenAccount", fields}` that `routes::commands` parses.
pub(super) fn flatten_variant(variant: &Value) -> (String, Value) {
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

/// The `Accepted` response of a collection's operation, with a link to the next command on the
/// same aggregate at the version this one left: stateful clients and fuzzers chain commands
/// through it (create, then change) instead of guessing ids.
fn accepted(
    accepted_response: &Value,
    operation_id: &str,
    collection: &CollectionCommands,
) -> Value {
    let mut response = accepted_response.clone();
    response["links"] = json!({ "NextCommand": {
        "operationId": operation_id,
        "description": format!(
            "Another command on the same {}, at the version this one left (`If-Match`).",
            collection.aggregate
        ),
        "parameters": {
            "path.id": "$response.body#/id",
            "header.If-Match": "$response.header.ETag",
        },
    }});
    response
}

/// `accepted_response` is the document's `Accepted` response, which each operation repeats with
/// its own links.
pub(super) fn command_operation(
    collection: &CollectionCommands,
    accepted_response: &Value,
) -> Value {
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
    let operation_id = format!("run{}Command", collection.aggregate);
    responses.insert(
        "200".into(),
        accepted(accepted_response, &operation_id, collection),
    );
    // The users' ids are checked for the nil UUID, which no user may have.
    let id = match collection.name {
        "users" => "UserId",
        _ => "AggregateId",
    };
    let parameters =
        [id, "IfMatch", "IdempotencyKey", "CorrelationId"].map(|p| component_ref("parameters", p));
    json!({
        "operationId": operation_id,
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
