//! The HTTP servers: the APIs' server with its middleware (problem+json for every error,
//! security headers, CORS, access log) and health probes, and the separate metrics server.
use std::net::TcpListener;

use actix_web::body::MessageBody;
use actix_web::dev::Server;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::{from_fn, ErrorHandlerResponse, ErrorHandlers, Next};
use actix_web::HttpMessage;
use actix_web::{web, App, HttpResponse, HttpServer};
use anyhow::Context;
use event_store::broker::BrokerHealth;
use event_store::trace::{RequestTrace, TraceContext, TRACEPARENT};
use metrics_exporter_prometheus::PrometheusHandle;
use sqlx::PgPool;
use tracing::Instrument;

use crate::config::{Config, SecretUrl};
use crate::startup::Parts;
use crate::supervisor::Health;
use secrecy::ExposeSecret;

/// How long in-flight requests may run on after the server stops taking connections; the
/// supervisor's own budget (under 10 s from the signal) cuts them off in any case.
const SHUTDOWN_TIMEOUT_SECONDS: u64 = 8;

pub(crate) fn http_server(
    config: &Config,
    parts: Parts,
    probes: Probes,
    commands: command_api::CommandApi,
    queries: query_api::QueryApi,
) -> anyhow::Result<Server> {
    // Port 0 picks a free port; the real one is printed so scripts and tests can find it.
    let listener = TcpListener::bind(&config.bind_addr)?;
    let address = listener.local_addr()?;
    println!("listening on http://{address}");
    let cors_origins = config.cors_allowed_origins.clone();
    let server = HttpServer::new(move || {
        let mut app = App::new()
            .wrap(cors(&cors_origins))
            .wrap(problems_everywhere())
            .wrap(security_headers())
            .wrap(tracing_actix())
            // Outermost: the status counted is the one the client gets.
            .wrap(from_fn(count_request))
            .wrap(from_fn(trace_request))
            .app_data(web::Data::new(probes.clone()))
            .route("/health/live", web::get().to(HttpResponse::Ok))
            .route("/health/ready", web::get().to(ready));
        if parts.command_api {
            let commands = commands.clone();
            app = app.configure(move |cfg| command_api::configure(cfg, commands));
        }
        if parts.query_api {
            let queries = queries.clone();
            app = app.configure(move |cfg| query_api::configure(cfg, queries));
        }
        app
    })
    // The supervisor handles the signals: it fails readiness and drains before stopping us.
    .disable_signals()
    .shutdown_timeout(SHUTDOWN_TIMEOUT_SECONDS)
    .listen(listener)?
    .run();
    Ok(server)
}

/// Errors answered before a route runs (no such route, 405, a refused CORS origin) come with
/// a text or empty body; they get the problem+json body every route's error has. Bodies that
/// are JSON already (problems, GraphQL errors) are left as they are.
fn problems_everywhere<B: MessageBody + 'static>() -> ErrorHandlers<B> {
    ErrorHandlers::new().default_handler(|response: ServiceResponse<B>| {
        let is_json = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("json"));
        if is_json {
            return Ok(ErrorHandlerResponse::Response(
                response.map_into_left_body(),
            ));
        }
        let status = response.status();
        let (request, old) = response.into_parts();
        let mut problem = HttpResponse::build(status);
        for (name, value) in old.headers() {
            if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
                problem.append_header((name.clone(), value.clone()));
            }
        }
        let problem = problem
            .content_type("application/problem+json")
            .json(command_api::problem_for_status(status));
        Ok(ErrorHandlerResponse::Response(
            ServiceResponse::new(request, problem).map_into_right_body(),
        ))
    })
}

/// Headers every response carries: these APIs serve JSON to programs, never pages to frame or
/// content to sniff, and nothing a shared cache should keep.
fn security_headers() -> actix_web::middleware::DefaultHeaders {
    actix_web::middleware::DefaultHeaders::new()
        .add(("X-Content-Type-Options", "nosniff"))
        .add(("X-Frame-Options", "DENY"))
        .add(("Referrer-Policy", "no-referrer"))
        .add(("Cache-Control", "no-store"))
}

/// Browsers may call the APIs only from the configured origins (`CORS_ALLOWED_ORIGINS`).
fn cors(origins: &[String]) -> actix_cors::Cors {
    let allowed = origins
        .iter()
        .fold(actix_cors::Cors::default(), |cors, origin| {
            cors.allowed_origin(origin)
        });
    allowed
        .allowed_methods(["GET", "POST"])
        .allowed_headers([
            "authorization",
            "content-type",
            "if-match",
            "idempotency-key",
            "x-correlation-id",
            "x-await-version",
            "traceparent",
        ])
        .expose_headers(["etag", "traceparent"])
        .max_age(3600)
}

fn tracing_actix() -> actix_web::middleware::Logger {
    actix_web::middleware::Logger::new("%r %s %Dms")
}

/// What `/health/ready` looks at.
#[derive(Clone)]
pub(crate) struct Probes {
    pool: PgPool,
    amqp_url: SecretUrl,
    health: Health,
    broker: BrokerHealth,
}

impl Probes {
    pub(crate) fn new(
        pool: PgPool,
        config: &Config,
        (health, broker): (Health, BrokerHealth),
    ) -> Self {
        Self {
            pool,
            amqp_url: config.amqp_url.clone(),
            health,
            broker,
        }
    }
}

/// Ready only when both Postgres and RabbitMQ answer and the process is not stopping (on a
/// signal, or because a worker ended: `stopping` then names it). RabbitMQ's state is the one
/// of the process's own connections, or a cached probe in a process without any (see
/// [`BrokerHealth`]): a probe never opens a connection of its own each time.
async fn ready(probes: web::Data<Probes>) -> HttpResponse {
    let postgres = sqlx::query("select 1").execute(&probes.pool).await.is_ok();
    let rabbitmq = probes.broker.is_up(probes.amqp_url.expose_secret()).await;
    let stopping = probes.health.stopping();
    let body = serde_json::json!({
        "postgres": postgres,
        "rabbitmq": rabbitmq,
        "stopping": stopping,
    });
    if postgres && rabbitmq && stopping.is_none() {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// `/metrics` on its own address (`METRICS_ADDR`, loopback by default): operators scrape it;
/// the API's clients never reach it. Prometheus text: what this process recorded, plus
/// deployment-wide gauges read at scrape time.
pub(crate) fn metrics_server(
    config: &Config,
    pool: PgPool,
    recorder: PrometheusHandle,
) -> anyhow::Result<Server> {
    let listener = TcpListener::bind(&config.metrics_addr)
        .with_context(|| format!("binding METRICS_ADDR {}", config.metrics_addr))?;
    // Logged, not printed: stdout's first line is the API's address, which scripts read.
    tracing::info!(address = %listener.local_addr()?, "serving /metrics");
    let scrape = Scrape { pool, recorder };
    let server = HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(scrape.clone()))
            .route("/metrics", web::get().to(metrics))
    })
    .workers(1)
    // Stopped with the process, not by the signal: a metrics server that ended on SIGTERM
    // would read as a worker that stopped, and the process would exit as failed.
    .disable_signals()
    .listen(listener)?
    .run();
    Ok(server)
}

#[derive(Clone)]
struct Scrape {
    pool: PgPool,
    recorder: PrometheusHandle,
}

/// The deployment-wide gauges come from index lookups, never a scan of the store: the last
/// position stored and how many of the events after the relay's checkpoint are still
/// unpublished; each projection's lag in events is the former minus what it last applied here.
async fn metrics(scrape: web::Data<Scrape>) -> HttpResponse {
    let Ok(positions) = event_store::relay::positions(&scrape.pool).await else {
        return HttpResponse::ServiceUnavailable().finish();
    };
    let stored = positions.stored_position;
    metrics::gauge!("b2b_events_stored_position").set(stored as f64);
    metrics::gauge!("b2b_events_unpublished").set(positions.unpublished as f64);
    for (group, projection, applied) in projections::applied_positions() {
        let labels = [("group", group), ("projection", projection.to_owned())];
        metrics::gauge!("b2b_projection_lag_events", &labels).set((stored - applied).max(0) as f64);
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(scrape.recorder.render())
}

/// Counts and times every request by its route's pattern (`/api/v1/{collection}/{id}`, never
/// the path itself, so ids do not make new series) and the status the client got.
async fn count_request(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = std::time::Instant::now();
    let method = method_label(request.method());
    let answered = next.call(request).await;
    let (route, status) = match &answered {
        Ok(response) => (
            response.request().match_pattern(),
            response.status().as_u16(),
        ),
        Err(error) => (None, error.as_response_error().status_code().as_u16()),
    };
    let labels = [
        ("method", method.to_owned()),
        ("route", route.unwrap_or_else(|| "unmatched".to_owned())),
        ("status", status.to_string()),
    ];
    metrics::counter!("b2b_http_requests_total", &labels).increment(1);
    metrics::histogram!("b2b_http_request_duration_seconds", &labels)
        .record(started.elapsed().as_secs_f64());
    answered
}

/// Every request runs in a span of its own (`http.request`) with its request and correlation
/// ids and its W3C trace context: a child of the client's `traceparent` when it sent a valid
/// one, else a new trace. The handlers store the same ids with the events they append, and the
/// response carries the span's `traceparent` back.
async fn trace_request(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let parent = request
        .headers()
        .get(TRACEPARENT)
        .and_then(|v| v.to_str().ok())
        .and_then(TraceContext::parse);
    let request_id = uuid::Uuid::new_v4();
    // As the command API takes it; a malformed one is refused there, and traced as the id.
    let correlation_id = request
        .headers()
        .get("x-correlation-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<uuid::Uuid>().ok())
        .unwrap_or(request_id);
    let span = tracing::info_span!(
        "http.request",
        method = %request.method(),
        path = %request.path(),
        %request_id,
        %correlation_id,
        trace_id = tracing::field::Empty,
        span_id = tracing::field::Empty,
        parent_span_id = parent.map(|p| p.span_id()),
        status = tracing::field::Empty,
    );
    // With an OTLP exporter, the exported span's own ids; the events store them.
    let trace = event_store::trace::join(&span, parent);
    span.record("trace_id", trace.trace_id());
    span.record("span_id", trace.span_id());
    request
        .extensions_mut()
        .insert(RequestTrace { request_id, trace });
    let answered = next.call(request).instrument(span.clone()).await;
    let mut response = answered?;
    span.record("status", response.status().as_u16());
    if let Ok(value) = header::HeaderValue::from_str(&trace.to_string()) {
        response
            .headers_mut()
            .insert(header::HeaderName::from_static(TRACEPARENT), value);
    }
    Ok(response)
}

/// Methods a client invents would each make new series: they count as `other`.
fn method_label(method: &actix_web::http::Method) -> &'static str {
    use actix_web::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}
