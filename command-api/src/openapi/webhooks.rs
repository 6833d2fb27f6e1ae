//! `POST /api/v1/webhooks/{id}`: the webhook endpoint commands, in the command collections' wire
//! form, their schemas generated from `routes::webhooks`'s own types.
use schemars::SchemaGenerator;
use serde_json::{json, Value};

use super::commands::{one_of_commands, tagged_commands};
use super::components::{component_ref, error_responses};
use crate::routes::webhooks::{WebhookAnswer, WebhookCommand};

/// The webhook commands in wire form (`(name, flat schema)`), for the document's schemas.
pub(super) fn webhook_commands(requests: &mut SchemaGenerator) -> Vec<(String, Value)> {
    tagged_commands::<WebhookCommand>(requests)
}

/// The path of the webhook commands.
pub(super) fn webhook_path(commands: &[(String, Value)], responses: &mut SchemaGenerator) -> Value {
    let answer: Value = responses.subschema_for::<WebhookAnswer>().into();
    let mut answers = error_responses(&[
        "400", "401", "403", "404", "408", "413", "415", "422", "429",
    ]);
    answers.insert(
        "200".into(),
        json!({
            "description": "Done. `RegisterWebhook` and `RotateWebhookSecret` answer the signing \
                secret, this once; `RedeliverWebhook` answers how many deliveries it put back.",
            "content": { "application/json": { "schema": answer } },
            "links": { "DisableWebhook": {
                "operationId": "runWebhookCommand",
                "description": "Change, disable or delete the endpoint just registered.",
                "parameters": { "path.id": "$response.body#/id" },
            }},
        }),
    );
    json!({ "post": {
        "operationId": "runWebhookCommand",
        "summary": "Manage a webhook endpoint",
        "description": "TenantAdmins only. The `id` is chosen by the client when it registers \
            the endpoint; an id in use is `webhook_exists` (422). The URL must be `https` and \
            its host resolve to public addresses only (`webhook_url_not_allowed`, 422; a \
            deployment with `APP_ENV` `local` or `test` also takes `http` and private \
            addresses). Each event of a subscribed type is POSTed as JSON \
            (`{\"type\", \"timestamp\", \"data\"}`) with the Standard Webhooks headers \
            `webhook-id`, `webhook-timestamp` and `webhook-signature` (`v1,` then the base64 \
            HMAC-SHA256 of `id.timestamp.body` keyed with the secret's base64 part), at least \
            once, in order per aggregate, retried with exponential backoff for 24 hours; then \
            the endpoint is disabled and its deliveries parked until `RedeliverWebhook`. These \
            commands take no `Idempotency-Key`. Endpoints and the delivery log are read through \
            GraphQL's `webhookEndpoints` and `webhookDeliveries`.",
        "tags": ["webhooks"],
        "security": [{ "bearerAuth": [] }],
        "parameters": [component_ref("parameters", "AggregateId")],
        "requestBody": one_of_commands(commands),
        "responses": answers,
    }})
}
