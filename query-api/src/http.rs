//! The two HTTP routes: `POST /graphql` (authenticated, one tenant-scoped transaction per
//! request) and `GET /graphql` (the GraphiQL page, which holds no data).
use actix_web::dev::Payload;
use actix_web::http::header::{HeaderMap, AUTHORIZATION};
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use async_graphql::http::GraphiQLSource;
use async_graphql_actix_web::GraphQLResponse;
use auth::Claims;
use futures::future::LocalBoxFuture;
use futures::StreamExt;
use uuid::Uuid;

use crate::await_version::{self, AwaitVersion};
use crate::schema::{self, QuerySchema};
use crate::{QueryApi, QueryError, TenantTx};

pub const CORRELATION_HEADER: &str = "X-Correlation-Id";

/// What `configure` registers for the handlers.
pub(crate) struct State {
    pub api: QueryApi,
    pub schema: QuerySchema,
}

/// The caller, admitted by [`auth::Identity::admit`] (live session, within rate limits).
/// Extracted before the body, so a refused request is never read or parsed.
pub(crate) struct Caller(Claims);

impl FromRequest for Caller {
    type Error = QueryError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req
            .app_data::<web::Data<State>>()
            .expect("configure registers the query-api state next to the routes")
            .clone();
        let token = req
            .headers()
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(auth::bearer_token)
            .map(str::to_owned);
        Box::pin(async move {
            let token = token.ok_or(QueryError::Unauthorized)?;
            Ok(Caller(state.api.identity.admit(&token).await?))
        })
    }
}

/// The client's correlation id when it is a sane token, else a fresh one: the value goes into
/// every log line of the request, so arbitrary client text must not.
fn correlation_id(headers: &HeaderMap) -> String {
    headers
        .get(CORRELATION_HEADER)
        .and_then(|value| value.to_str().ok())
        .filter(|id| {
            (1..=128).contains(&id.len())
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
        })
        .map_or_else(|| Uuid::new_v4().to_string(), str::to_owned)
}

#[tracing::instrument(
    name = "graphql",
    skip_all,
    fields(
        tenant = %caller.0.tenant,
        tenant_id = %caller.0.tid,
        user_id = %caller.0.sub,
        correlation_id = %correlation_id(req.headers()),
    )
)]
pub(crate) async fn execute(
    caller: Caller,
    req: HttpRequest,
    state: web::Data<State>,
    body: web::Payload,
) -> Result<GraphQLResponse, QueryError> {
    let Caller(claims) = caller;
    let request = read_request(body).await?;
    if let Err(refusal) = await_requested_version(&req, &state.api, claims.tid).await {
        return answer_unexecuted(refusal);
    }
    let tx = TenantTx::begin(&state.api.read_pool, claims.tid).await?;
    let response = schema::execute(&state.schema, request, claims, &tx).await;
    if let Err(error) = tx.finish(response.is_ok()).await {
        // The reads are done and were consistent; ending a read-only transaction badly loses
        // nothing, so the client still gets its answer.
        tracing::warn!(%error, "could not end the request's read-only transaction");
    }
    Ok(response.into())
}

/// Largest `POST /graphql` body read: the biggest sensible query with its variables fits many
/// times over, and nothing larger is held in memory.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// One GraphQL request as JSON (`{"query", "variables", "operationName"}`), read up to
/// [`MAX_BODY_BYTES`]. Batches are not served.
async fn read_request(mut payload: web::Payload) -> Result<async_graphql::Request, QueryError> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| QueryError::BadRequest(e.to_string()))?;
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(QueryError::PayloadTooLarge(MAX_BODY_BYTES));
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body)
        .map_err(|e| QueryError::BadRequest(format!("the body is not a GraphQL request: {e}")))
}

/// Honours `X-Await-Version` when present.
async fn await_requested_version(
    req: &HttpRequest,
    api: &QueryApi,
    tenant_id: Uuid,
) -> Result<(), QueryError> {
    let Some(raw) = req.headers().get(await_version::HEADER) else {
        return Ok(());
    };
    // A header that is not even text parses as "" and is refused as malformed like any other.
    let target: AwaitVersion = raw.to_str().unwrap_or_default().parse()?;
    let pools = await_version::Pools {
        primary: &api.pool,
        reads: &api.read_pool,
        read_from: api.read_from,
    };
    await_version::wait_for(
        pools,
        tenant_id,
        target,
        &api.await_targets,
        api.await_timeout,
        api.await_signals.as_deref(),
    )
    .await
}

/// Client-side refusals become a GraphQL response (HTTP 200, `data: null`, coded error), the
/// shape GraphQL clients handle; anything else is a server failure.
fn answer_unexecuted(refusal: QueryError) -> Result<GraphQLResponse, QueryError> {
    match refusal {
        QueryError::StaleRead(_) | QueryError::BadRequest(_) => {
            let response = async_graphql::Response::from_errors(vec![refusal.into_server_error()]);
            Ok(response.into())
        }
        other => Err(other),
    }
}

pub(crate) async fn graphiql() -> HttpResponse {
    let page = GraphiQLSource::build()
        .endpoint("/graphql")
        .title("b2b queries")
        .finish();
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(page)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    fn headers(name: &'static str, value: &str) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert(
            HeaderName::from_static(name),
            HeaderValue::from_str(value).unwrap(),
        );
        map
    }

    #[test]
    fn a_sane_correlation_id_is_kept_and_anything_else_replaced() {
        let kept = correlation_id(&headers("x-correlation-id", "req-42_a.b:c"));
        assert_eq!(kept, "req-42_a.b:c");
        let replaced = correlation_id(&headers("x-correlation-id", "evil\" injected=1"));
        assert!(Uuid::parse_str(&replaced).is_ok());
        assert!(Uuid::parse_str(&correlation_id(&HeaderMap::new())).is_ok());
    }
}
