//! `POST /api/v1/webhooks/{id}`: a TenantAdmin registers, changes, disables, enables, deletes a
//! webhook endpoint, rotates its secret, or asks for deliveries again. The commands have the
//! command collections' wire form (`{"type": "RegisterWebhook", ...}`), but an endpoint holds a
//! secret, so it is kept by the `webhooks` crate in a table (as API keys are by `auth`), not in
//! the event log. The secret is in `RegisterWebhook`'s and `RotateWebhookSecret`'s answers
//! only: no `Idempotency-Key` receipt could replay it, so these commands take none, and
//! registering an id that exists is refused (`webhook_exists`).
use actix_web::{web, HttpRequest, HttpResponse};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use webhooks::store::{Caller as WebhookCaller, EndpointChange, EndpointRequest};

use crate::body::{into_command, parse_object, read_json_body};
use crate::{ApiError, Caller, CommandApi};

/// What a TenantAdmin may do with a webhook endpoint.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub enum WebhookCommand {
    /// Registers an endpoint that receives the tenant's events of these types, signed per
    /// Standard Webhooks. The answer carries the signing secret (`whsec_…`), once.
    RegisterWebhook {
        /// An `https` URL whose host resolves to public addresses only
        /// (`webhook_url_not_allowed` otherwise).
        #[schemars(length(min = 1, max = 2000))]
        url: String,
        /// Event type names (`QuoteSubmitted`, `AccountOpened`, …), or `*` for every event.
        #[schemars(
            length(min = 1, max = 50),
            inner(regex(pattern = r"^(\*|[A-Z][A-Za-z0-9]{0,63})$"))
        )]
        event_types: Vec<String>,
        /// What the endpoint is for.
        description: Option<String>,
    },
    /// Replaces the fields given.
    ChangeWebhook {
        #[schemars(length(min = 1, max = 2000))]
        url: Option<String>,
        #[schemars(
            length(min = 1, max = 50),
            inner(regex(pattern = r"^(\*|[A-Z][A-Za-z0-9]{0,63})$"))
        )]
        event_types: Option<Vec<String>>,
        description: Option<String>,
    },
    /// Stops recording events for the endpoint and parks its pending deliveries.
    DisableWebhook {},
    /// Records events for the endpoint again (parked deliveries wait for `RedeliverWebhook`).
    EnableWebhook {},
    /// Deletes the endpoint and its delivery log.
    DeleteWebhook {},
    /// Replaces the signing secret; the answer carries the new one, once.
    RotateWebhookSecret {},
    /// Sends deliveries again: the one named, or else every parked delivery of the endpoint,
    /// each with a fresh retry window. The endpoint must be enabled (`webhook_disabled`).
    RedeliverWebhook { delivery_id: Option<Uuid> },
}

impl aggregates::CommandSet for WebhookCommand {
    fn name(&self) -> &'static str {
        match self {
            Self::RegisterWebhook { .. } => "RegisterWebhook",
            Self::ChangeWebhook { .. } => "ChangeWebhook",
            Self::DisableWebhook {} => "DisableWebhook",
            Self::EnableWebhook {} => "EnableWebhook",
            Self::DeleteWebhook {} => "DeleteWebhook",
            Self::RotateWebhookSecret {} => "RotateWebhookSecret",
            Self::RedeliverWebhook { .. } => "RedeliverWebhook",
        }
    }

    const SYSTEM_ONLY: &'static [&'static str] = &[];
}

/// The answer to a webhook command.
#[derive(Serialize, JsonSchema)]
pub(crate) struct WebhookAnswer {
    id: Uuid,
    /// The signing secret, `whsec_<base64>`: only in `RegisterWebhook`'s and
    /// `RotateWebhookSecret`'s answers, and only this once.
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
    /// How many deliveries `RedeliverWebhook` put back in line.
    #[serde(skip_serializing_if = "Option::is_none")]
    requeued: Option<u64>,
}

#[tracing::instrument(skip_all, fields(tenant = %caller.0.tid, webhook = %path))]
pub async fn execute(
    api: web::Data<CommandApi>,
    caller: Caller,
    path: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let raw_id = path.into_inner();
    let id = super::path_id(&raw_id)?;
    if req.headers().contains_key("idempotency-key") {
        return Err(ApiError::BadHeader(
            "webhook commands take no Idempotency-Key: a secret is never replayed, and \
             registering an id that exists is refused instead"
                .into(),
        ));
    }
    let body = read_json_body(&req, payload).await?;
    let (command_type, fields) = parse_object(&body)?;
    let command = into_command::<WebhookCommand>(command_type, fields)?;
    let actor = caller.0.actor();
    let who = || WebhookCaller {
        actor: &actor,
        id: caller.0.sub,
        tenant: caller.0.tid,
    };
    let endpoints = &api.webhooks;
    let mut answer = WebhookAnswer {
        id,
        secret: None,
        requeued: None,
    };
    match command {
        WebhookCommand::RegisterWebhook {
            url,
            event_types,
            description,
        } => {
            let request = EndpointRequest {
                url,
                event_types,
                description,
            };
            answer.secret = Some(endpoints.register(who(), id, request).await?.secret);
        }
        WebhookCommand::ChangeWebhook {
            url,
            event_types,
            description,
        } => {
            let change = EndpointChange {
                url,
                event_types,
                description,
            };
            endpoints.change(who(), id, change).await?;
        }
        WebhookCommand::DisableWebhook {} => endpoints.disable(who(), id).await?,
        WebhookCommand::EnableWebhook {} => endpoints.enable(who(), id).await?,
        WebhookCommand::DeleteWebhook {} => endpoints.delete(who(), id).await?,
        WebhookCommand::RotateWebhookSecret {} => {
            answer.secret = Some(endpoints.rotate_secret(who(), id).await?.secret);
        }
        WebhookCommand::RedeliverWebhook { delivery_id } => {
            answer.requeued = Some(endpoints.redeliver(who(), id, delivery_id).await?);
        }
    }
    Ok(HttpResponse::Ok()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(answer))
}
