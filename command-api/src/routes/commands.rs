use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use aggregates::{Command, DomainError};
use chrono::Utc;
use cqrs_es::Aggregate;
use event_store::{AggregateStore, EventMetadata};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::body::{parse_command, read_limited};
use crate::idempotency::{IdempotencyKey, Reservation};
use crate::request::{expected_version, RequestIds};
use crate::routes::users;
use crate::{ApiError, Caller, CommandApi, MAX_BODY_BYTES};

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
    let ids = RequestIds::from_request(&req)?;
    tracing::Span::current().record(
        "correlation_id",
        tracing::field::display(ids.correlation_id),
    );
    let expected = expected_version(&req)?;
    let body = read_limited(payload, MAX_BODY_BYTES).await?;
    let request: [&[u8]; 3] = [collection.as_bytes(), id.as_bytes(), &body];
    let key = IdempotencyKey::from_request(&req, caller.0.tid, caller.0.sub, &request)?;
    let metadata = EventMetadata {
        tenant_id: caller.0.tid,
        actor: caller.0.actor(),
        correlation_id: ids.correlation_id,
        causation_id: ids.request_id,
        request_id: ids.request_id,
        recorded_at: Utc::now(),
        client: ids.client,
    };
    let run = dispatch(&api, &collection, id, &body, expected, &metadata);
    let reply = match key {
        None => accepted(id, run.await?),
        Some(key) => match key.reserve(&api.pool).await? {
            Reservation::Replay(reply) => reply,
            Reservation::Fresh(key) => match run.await {
                Ok(version) => {
                    let reply = accepted(id, version);
                    key.complete(&api.pool, &reply).await?;
                    reply
                }
                Err(error) => {
                    key.release(&api.pool).await?;
                    return Err(error);
                }
            },
        },
    };
    Ok(HttpResponse::Ok()
        .insert_header((header::ETAG, format!("\"{}\"", reply["version"])))
        .json(reply))
}

/// A command's answer, stored as is for `Idempotency-Key` replays.
#[derive(Serialize, JsonSchema)]
pub(crate) struct Accepted {
    id: Uuid,
    /// The aggregate's version after the command; also sent as the `ETag`.
    version: u64,
}

fn accepted(id: Uuid, version: u64) -> Value {
    json!(Accepted { id, version })
}

/// Parses the body as the collection's command and runs it.
async fn dispatch(
    api: &CommandApi,
    collection: &str,
    id: Uuid,
    body: &[u8],
    expected: Option<u64>,
    metadata: &EventMetadata,
) -> Result<u64, ApiError> {
    let bus = &api.bus;
    match collection {
        "accounts" => run(&bus.accounts, id, parse_command(body)?, expected, metadata).await,
        "quotes" => run(&bus.quotes, id, parse_command(body)?, expected, metadata).await,
        "approvals" => run(&bus.approvals, id, parse_command(body)?, expected, metadata).await,
        "contracts" => run(&bus.contracts, id, parse_command(body)?, expected, metadata).await,
        "users" => {
            let request = users::parse(body, id)?;
            let version = run(&bus.users, id, request.command, expected, metadata).await?;
            if let Some(password) = request.password {
                users::store_password(&api.pool, metadata.tenant_id, id, &password).await?;
            }
            Ok(version)
        }
        other => Err(ApiError::NotFound(format!(
            "no command collection `{other}`"
        ))),
    }
}

async fn run<A, C>(
    store: &AggregateStore<A>,
    id: Uuid,
    body: C,
    expected: Option<u64>,
    metadata: &EventMetadata,
) -> Result<u64, ApiError>
where
    A: Aggregate<Command = Command<C>, Error = DomainError>,
    C: Clone,
{
    let command = Command::new(
        metadata.tenant_id,
        metadata.actor.clone(),
        metadata.recorded_at,
        body,
    );
    Ok(store
        .execute(&id.to_string(), command, expected, metadata)
        .await?)
}
