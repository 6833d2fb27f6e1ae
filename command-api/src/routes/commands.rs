use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use aggregates::Command;
use chrono::{DateTime, Utc};
use event_store::{
    AggregateStore, AlongsideEvents, BusAggregate, Collection, Credential, EventMetadata,
    PerAggregate, UnknownCollection,
};
use futures::future::LocalBoxFuture;
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::body::{into_command, parse_object, read_json_body, Fields};
use crate::idempotency;
use crate::request::{expected_version, RequestIds};
use crate::routes::users;
use crate::{ApiError, Caller, CommandApi};

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
    let id = super::path_id(&raw_id)?;
    let ids = RequestIds::from_request(&req)?;
    tracing::Span::current().record(
        "correlation_id",
        tracing::field::display(ids.correlation_id),
    );
    let expected = expected_version(&req)?;
    let body = read_json_body(&req, payload).await?;
    let request: [&[u8]; 3] = [collection.as_bytes(), id.as_bytes(), &body];
    let receipt = idempotency::receipt(&req, caller.0.tid, caller.0.sub, &request, move |v| {
        accepted(id, v)
    })?;
    if let Some(reply) = match &receipt {
        Some(receipt) => idempotency::earlier_reply(receipt, &api.pool).await?,
        None => None,
    } {
        return Ok(answer(reply));
    }
    let metadata = EventMetadata {
        tenant_id: caller.0.tid,
        actor: caller.0.actor(),
        correlation_id: ids.correlation_id,
        causation_id: ids.request_id,
        request_id: ids.request_id,
        recorded_at: Utc::now(),
        client: ids.client,
        traceparent: ids.traceparent,
        api_key_id: caller.0.api_key.then_some(caller.0.sub),
    };
    let faults = FaultPoints::of(&api, &req);
    faults.reach("before-append");
    let run = Run {
        id,
        at: api.clock.now().await?,
        expected,
        metadata: &metadata,
        alongside: AlongsideEvents {
            receipt: receipt.as_ref(),
            credential: None,
        },
    };
    let outcome = dispatch(&api, &caller, &collection, &body, run).await;
    let reply = match (outcome, &receipt) {
        (Ok(version), _) => accepted(id, version),
        // A twin with the same key may have committed while this one ran: its reply stands.
        (Err(error), Some(receipt)) => idempotency::earlier_reply(receipt, &api.pool)
            .await?
            .ok_or(error)?,
        (Err(error), None) => return Err(error),
    };
    faults.reach("after-append");
    Ok(answer(reply))
}

fn answer(reply: Value) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::ETAG, format!("\"{}\"", reply["version"])))
        .json(reply)
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
    caller: &Caller,
    collection: &str,
    body: &[u8],
    run: Run<'_>,
) -> Result<u64, ApiError> {
    let collection: Collection = collection
        .parse()
        .map_err(|e: UnknownCollection| ApiError::NotFound(e.to_string()))?;
    let request = parse_request(collection, body, run.id)?;
    let version = collection
        .dispatch(RunRequest {
            api,
            caller,
            request,
            run,
        })
        .await?;
    if collection == Collection::Users {
        api.settle_caches().await;
    }
    Ok(version)
}

/// A command as the body states it, before it is parsed into the collection's command type.
pub(crate) struct Request {
    command_type: String,
    fields: Fields,
    /// Only on user commands: hashed into the credentials table, never seen by the aggregate.
    password: Option<String>,
}

/// Reads the body's command type and fields, with the user extras taken out (`routes::users`).
pub(crate) fn parse_request(
    collection: Collection,
    body: &[u8],
    id: Uuid,
) -> Result<Request, ApiError> {
    let (command_type, mut fields) = parse_object(body)?;
    let password = match collection {
        Collection::Users => users::take_extras(&command_type, &mut fields, id)?,
        _ => None,
    };
    Ok(Request {
        command_type,
        fields,
        password,
    })
}

impl Request {
    /// The command of aggregate `A` and the password that comes with it.
    pub(crate) fn into_command<A: BusAggregate>(
        self,
    ) -> Result<(A::Body, Option<String>), ApiError> {
        Ok((into_command(self.command_type, self.fields)?, self.password))
    }
}

/// Runs one request on the aggregate its collection names.
struct RunRequest<'a> {
    api: &'a CommandApi,
    caller: &'a Caller,
    request: Request,
    run: Run<'a>,
}

impl<'a> PerAggregate for RunRequest<'a> {
    type Output = LocalBoxFuture<'a, Result<u64, ApiError>>;

    fn run<A: BusAggregate>(self) -> Self::Output {
        Box::pin(async move {
            let (body, password) = self.request.into_command::<A>()?;
            let hash = match password {
                Some(password) => Some(self.api.identity.hash_password(password).await?),
                None => None,
            };
            // Changing one's own password keeps the session it was changed from.
            let caller = &self.caller.0;
            let own = caller.sub == self.run.id;
            let credential = hash.as_deref().map(|password_hash| Credential {
                password_hash,
                keep_session: own.then_some(caller.sid),
            });
            let run = Run {
                alongside: AlongsideEvents {
                    credential,
                    ..self.run.alongside
                },
                ..self.run
            };
            run.on(self.api.bus.store::<A>(), body).await
        })
    }
}

/// One command's request, ready to run against the collection's store.
struct Run<'a> {
    id: Uuid,
    /// When the command is decided (the process's clock; movable in tests).
    at: DateTime<Utc>,
    expected: Option<u64>,
    metadata: &'a EventMetadata,
    alongside: AlongsideEvents<'a>,
}

impl Run<'_> {
    async fn on<A: BusAggregate>(
        self,
        store: &AggregateStore<A>,
        body: A::Body,
    ) -> Result<u64, ApiError> {
        let metadata = self.metadata;
        let command = Command::new(metadata.tenant_id, metadata.actor.clone(), self.at, body);
        let id = self.id.to_string();
        Ok(store
            .execute_with(&id, command, self.expected, metadata, &self.alongside)
            .await?)
    }
}

/// Test-only crash points (`B2B_TEST_FAULTS=1`, refused outside `APP_ENV=test`): a request
/// carrying `X-Test-Fault: <point>` aborts the process there, as a SIGKILL would, so the fault
/// tests can hit the window between a commit and its reply deterministically.
struct FaultPoints(Option<String>);

impl FaultPoints {
    fn of(api: &CommandApi, req: &HttpRequest) -> Self {
        let point = api
            .test_faults
            .then(|| req.headers().get("x-test-fault"))
            .flatten()
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Self(point)
    }

    fn reach(&self, point: &str) {
        if self.0.as_deref() == Some(point) {
            tracing::error!(point, "test fault: aborting the process");
            std::process::abort();
        }
    }
}
