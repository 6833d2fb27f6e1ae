use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use aggregates::account::AccountCommand;
use aggregates::Command;
use chrono::Utc;
use event_store::EventMetadata;
use serde::Serialize;
use uuid::Uuid;

use crate::body::{parse_command, read_limited};
use crate::request::{expected_version, RequestIds};
use crate::{ApiError, Caller, CommandApi, MAX_BODY_BYTES};

#[derive(Serialize)]
struct Accepted {
    id: Uuid,
    version: u64,
}

/// `POST /api/v1/{collection}/{id}`: runs one command and answers with the new version.
#[tracing::instrument(
    skip_all,
    fields(tenant = %caller.0.tid, collection = %path.0, aggregate_id = %path.1, correlation_id)
)]
pub async fn execute(
    api: web::Data<CommandApi>,
    caller: Caller,
    path: web::Path<(String, String)>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (collection, raw_id) = path.into_inner();
    let id: Uuid = raw_id
        .parse()
        .map_err(|_| ApiError::NotFound(format!("`{raw_id}` is not a UUID")))?;
    let ids = RequestIds::from_request(&req);
    tracing::Span::current().record(
        "correlation_id",
        tracing::field::display(ids.correlation_id),
    );
    let expected = expected_version(&req)?;
    let body = read_limited(payload, MAX_BODY_BYTES).await?;
    let metadata = EventMetadata {
        tenant_id: caller.0.tid,
        actor: caller.0.actor(),
        correlation_id: ids.correlation_id,
        causation_id: ids.request_id,
        request_id: ids.request_id,
        recorded_at: Utc::now(),
        client: ids.client,
    };
    let version = match collection.as_str() {
        "accounts" => {
            let command: AccountCommand = parse_command(&body)?;
            let command = Command::new(
                metadata.tenant_id,
                metadata.actor.clone(),
                metadata.recorded_at,
                command,
            );
            api.accounts
                .execute(&id.to_string(), command, expected, &metadata)
                .await?
        }
        other => {
            return Err(ApiError::NotFound(format!(
                "no command collection `{other}`"
            )))
        }
    };
    Ok(HttpResponse::Ok()
        .insert_header((header::ETAG, format!("\"{version}\"")))
        .json(Accepted { id, version }))
}
