//! `POST /api/v1/api-keys/{id}`: a TenantAdmin creates or revokes an API key. The commands have
//! the command collections' wire form (`{"type": "CreateApiKey", ...}`), but a key is a
//! credential kept by `auth` (not an aggregate: see ARCHITECTURE.md), so they run there. The
//! secret is in the creation's answer only: no `Idempotency-Key` receipt could replay it, so
//! these commands take none, and creating an id that exists is refused (`api_key_exists`).
use actix_web::{web, HttpRequest, HttpResponse};
use aggregates::Role;
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::body::{into_command, parse_object, read_json_body};
use crate::{ApiError, Caller, CommandApi};

/// What a TenantAdmin may do with an API key.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub enum ApiKeyCommand {
    /// Creates a key with these roles (and, for a Partner key, its account) until `expires_at`
    /// (after now, at most 730 days ahead). The answer carries the secret, once.
    CreateApiKey {
        /// What the key is for, shown in the listing.
        name: String,
        roles: Vec<Role>,
        /// Required for a Partner key, refused for any other.
        account_id: Option<Uuid>,
        expires_at: DateTime<Utc>,
    },
    /// Revokes the key: its next request is refused on every replica. Revoking it again
    /// changes nothing.
    RevokeApiKey {},
}

impl aggregates::CommandSet for ApiKeyCommand {
    fn name(&self) -> &'static str {
        match self {
            Self::CreateApiKey { .. } => "CreateApiKey",
            Self::RevokeApiKey {} => "RevokeApiKey",
        }
    }

    const SYSTEM_ONLY: &'static [&'static str] = &[];
}

/// The answer to a key command.
#[derive(Serialize, JsonSchema)]
pub(crate) struct ApiKeyAnswer {
    id: Uuid,
    /// `Authorization: Bearer <secret>`. Only in `CreateApiKey`'s answer, and only this once:
    /// the server keeps just its hash.
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    revoked_at: Option<DateTime<Utc>>,
}

#[tracing::instrument(skip_all, fields(tenant = %caller.0.tid, key_id = %path))]
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
            "API key commands take no Idempotency-Key: a creation's secret is never replayed, \
             and creating an id that exists is refused instead"
                .into(),
        ));
    }
    let body = read_json_body(&req, payload).await?;
    let (command_type, fields) = parse_object(&body)?;
    let answer = match into_command::<ApiKeyCommand>(command_type, fields)? {
        ApiKeyCommand::CreateApiKey {
            name,
            roles,
            account_id,
            expires_at,
        } => {
            let request = auth::api_keys::KeyRequest {
                name,
                roles,
                account_id,
                expires_at,
            };
            let now = api.clock.now().await?;
            let key = api
                .identity
                .create_api_key(&caller.0, id, request, now)
                .await?;
            ApiKeyAnswer {
                id,
                secret: Some(key.secret),
                expires_at: Some(key.expires_at),
                revoked_at: None,
            }
        }
        ApiKeyCommand::RevokeApiKey {} => {
            let revoked_at = api.identity.revoke_api_key(&caller.0, id).await?;
            // Answer once every replica has been told (as sign-out does).
            api.settle_caches().await;
            ApiKeyAnswer {
                id,
                secret: None,
                expires_at: None,
                revoked_at: Some(revoked_at),
            }
        }
    };
    Ok(HttpResponse::Ok()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(answer))
}
