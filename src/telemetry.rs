use tracing_subscriber::EnvFilter;

/// Logs go to stderr (stdout carries command output such as exports). JSON unless
/// `LOG_FORMAT=pretty`; `RUST_LOG` filters (an invalid filter falls back to `info`).
pub fn init(filter: &str, format: &str) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "pretty" {
        builder.init();
    } else {
        builder.json().with_current_span(true).init();
    }
}
