use aggregates::DomainError;

/// Why a command did not append events.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Rejected(#[from] DomainError),
    /// The stream (of this aggregate type) belongs to another tenant; to the caller it does
    /// not exist, exactly as an id that exists nowhere.
    #[error("no such {} in this tenant", .0.to_lowercase())]
    NotFound(&'static str),
    #[error("expected version {expected}, the aggregate is at version {actual}")]
    VersionMismatch { expected: u64, actual: u64 },
    #[error("other writers kept changing the aggregate; gave up after {0} attempts")]
    Contended(u32),
    /// A concurrent request with the same `Idempotency-Key` committed first.
    #[error("a concurrent request with this Idempotency-Key committed first")]
    KeyTaken,
    #[error("event store failure: {0}")]
    Storage(String),
    /// A stored payload is no event of its type at its version that the code can read: a
    /// schema changed without an upcaster, or an event written by a newer release.
    #[error("{event_type} (version {version}) does not decode: {reason}")]
    Undecodable {
        event_type: String,
        version: String,
        reason: String,
    },
    #[error("event not published: {0}")]
    Unpublished(String),
    #[error("message broker failure: {0}")]
    Broker(#[from] lapin::Error),
    /// A key, a checkpoint or an export that the audit tools cannot use.
    #[error("{0}")]
    Audit(String),
    #[error("database failure: {0}")]
    Database(#[from] sqlx::Error),
    /// A server that does not answer, or refuses the login, at startup: named with its
    /// address, so an operator sees which one and why at once.
    #[error("cannot connect to {service} at {address}: {cause}")]
    Unreachable {
        service: &'static str,
        address: String,
        cause: String,
    },
}
