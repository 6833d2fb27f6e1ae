use anyhow::Context;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::Settings;

/// The span exporter, if one runs; [`Tracing::shutdown`] sends what it still holds.
pub struct Tracing(Option<SdkTracerProvider>);

impl Tracing {
    /// Exports the spans not sent yet and stops the exporter (it blocks: call it outside the
    /// async runtime).
    pub fn shutdown(self) {
        if let Some(provider) = self.0 {
            if let Err(error) = provider.shutdown() {
                eprintln!("exporting the last spans: {error}");
            }
        }
    }
}

/// Logs go to stderr (stdout carries command output such as exports). JSON unless
/// `LOG_FORMAT=pretty`; `RUST_LOG` filters (an invalid filter falls back to `info`). With
/// `OTEL_EXPORTER_OTLP_ENDPOINT` the same spans are also exported over OTLP/HTTP; without it no
/// exporter is built and nothing is sent.
pub fn init(settings: &Settings) -> anyhow::Result<Tracing> {
    let filter = EnvFilter::try_new(&settings.rust_log).unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let logs = match settings.log_format.as_str() {
        "pretty" => logs.boxed(),
        _ => logs.json().with_current_span(true).boxed(),
    };
    let provider = match &settings.otel_exporter_otlp_endpoint {
        Some(endpoint) => Some(span_exporter(endpoint, &settings.otel_service_name)?),
        None => None,
    };
    let exported = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer().with_tracer(provider.tracer(env!("CARGO_PKG_NAME")))
    });
    tracing_subscriber::registry()
        .with(filter)
        .with(logs)
        .with(exported)
        .init();
    Ok(Tracing(provider))
}

/// Batches spans and posts them as protobuf to `{endpoint}/v1/traces`, from a thread of its
/// own (the batch processor's), so exporting never holds up a request.
fn span_exporter(endpoint: &url::Url, service: &str) -> anyhow::Result<SdkTracerProvider> {
    // As the OTLP specification reads this variable: a base URL the signal's path extends.
    let traces = format!("{}/v1/traces", endpoint.as_str().trim_end_matches('/'));
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_endpoint(traces)
        .build()
        .context("building the OTLP span exporter")?;
    let resource = Resource::builder()
        .with_service_name(service.to_owned())
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}
/// Latency buckets (seconds) of the HTTP histogram: from a cached read to a slow command.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Batch-size buckets: one event up to a relay batch (512) or a rebuild's.
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 512.0, 1000.0];

/// Installs the process-wide Prometheus recorder every `metrics::counter!` and the like report
/// to, and describes each metric; `/metrics` renders it. Only long-running processes install it
/// (the operator commands' metrics would go nowhere).
pub fn install_metrics() -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)?
        .set_buckets_for_metric(Matcher::Suffix("_batch_size".into()), BATCH_BUCKETS)?
        .install_recorder()?;
    describe();
    Ok(handle)
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        "b2b_http_requests_total",
        "HTTP requests answered, by method, route pattern and status."
    );
    describe_histogram!(
        "b2b_http_request_duration_seconds",
        Unit::Seconds,
        "Time to answer an HTTP request, by method, route pattern and status."
    );
    describe_counter!(
        "b2b_commands_total",
        "Commands run through the command bus (API, process managers, timers), by aggregate \
         type, command and outcome."
    );
    describe_counter!(
        "b2b_events_appended_total",
        "Events this process appended, by aggregate type."
    );
    describe_gauge!(
        "b2b_events_stored_position",
        "Global position of the last stored event."
    );
    describe_gauge!(
        "b2b_events_unpublished",
        "Stored events the relay has not published yet."
    );
    describe_gauge!(
        "b2b_relay_leader",
        "1 while this process's relay holds the lease and publishes, else 0."
    );
    describe_counter!(
        "b2b_relay_published_total",
        "Events this process's relay published and RabbitMQ confirmed."
    );
    describe_histogram!("b2b_relay_batch_size", "Events per relay batch.");
    describe_histogram!(
        "b2b_projector_batch_size",
        "Events per applied consumer batch, by group."
    );
    describe_gauge!(
        "b2b_projection_lag_seconds",
        "Age of the newest event of the last batch applied, when it was applied, by group and \
         projection."
    );
    describe_gauge!(
        "b2b_projection_lag_events",
        "Events stored after the newest one this process applied, by group and projection."
    );
    describe_counter!(
        "b2b_projection_events_applied_total",
        "Events in the batches applied, by group and projection."
    );
    describe_counter!(
        "b2b_projector_parked_total",
        "Deliveries this process parked as poison, by group."
    );
    describe_counter!(
        "b2b_projector_requeued_total",
        "Deliveries this process requeued after a failure, by group."
    );
    describe_counter!("b2b_sign_ins_total", "Sign-in attempts, by outcome.");
    describe_gauge!(
        "b2b_rebuild_events_replayed",
        "While `b2b projections rebuild` runs: events of the projection's aggregates replayed \
         so far (across resumptions), by projection."
    );
    describe_gauge!(
        "b2b_rebuild_position",
        "While a rebuild runs: the global position its replay has reached, by projection."
    );
    describe_gauge!(
        "b2b_rebuild_target_position",
        "While a rebuild runs: the store's last global position when it started, which the \
         replay has to reach, by projection."
    );
    describe_gauge!(
        "b2b_rebuild_events_per_second",
        "While a rebuild runs: events replayed per second since it started (or resumed), by \
         projection."
    );
}
