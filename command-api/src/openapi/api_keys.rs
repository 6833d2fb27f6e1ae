//! `POST /api/v1/api-keys/{id}`: the API key commands, in the command collections' wire form,
//! their schemas generated from `routes::api_keys`'s own types.
use schemars::SchemaGenerator;
use serde_json::{json, Value};

use super::commands::{one_of_commands, tagged_commands};
use super::components::{component_ref, error_responses};
use crate::routes::api_keys::{ApiKeyAnswer, ApiKeyCommand};

/// The key commands in wire form (`(name, flat schema)`), for the document's schemas.
pub(super) fn key_commands(requests: &mut SchemaGenerator) -> Vec<(String, Value)> {
    tagged_commands::<ApiKeyCommand>(requests)
}

/// The path of the key commands.
pub(super) fn key_path(commands: &[(String, Value)], responses: &mut SchemaGenerator) -> Value {
    let answer: Value = responses.subschema_for::<ApiKeyAnswer>().into();
    let mut answers = error_responses(&[
        "400", "401", "403", "404", "408", "413", "415", "422", "429",
    ]);
    answers.insert(
        "200".into(),
        json!({
            "description": "The key was created (the answer holds its secret, this once) or \
                revoked.",
            "content": { "application/json": { "schema": answer } },
            "links": { "RevokeApiKey": {
                "operationId": "runApiKeyCommand",
                "description": "Revoke the key just created.",
                "parameters": { "path.id": "$response.body#/id" },
            }},
        }),
    );
    json!({ "post": {
        "operationId": "runApiKeyCommand",
        "summary": "Create or revoke an API key",
        "description": "TenantAdmins only, signed in (a key does not manage keys). The `id` is \
            chosen by the client when it creates the key; an id in use is `api_key_exists` \
            (422). The secret, `b2bk_…`, is answered once and stored only as a hash: use it as \
            `Authorization: Bearer <secret>` on both APIs. A key acts with its roles (a Partner \
            key for its account only), is rate-limited like a user, and is named as the actor \
            of what it writes. Revoking stops it on every server before the answer; revoking \
            again changes nothing. These commands take no `Idempotency-Key`. Keys are listed \
            with their last use by GraphQL's `apiKeys`.",
        "tags": ["api-keys"],
        "security": [{ "bearerAuth": [] }],
        "parameters": [component_ref("parameters", "AggregateId")],
        "requestBody": one_of_commands(commands),
        "responses": answers,
    }})
}
