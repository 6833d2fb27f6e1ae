use tracing_subscriber::EnvFilter;

/// Logs go to stderr (stdout carries command output such as exports). JSON unless
/// `LOG_FORMAT=pretty`.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::env::var("LOG_FORMAT").as_deref() == Ok("pretty") {
        builder.init();
    } else {
        builder.json().with_current_span(true).init();
    }
}
