use aggregates::RuleCode;

/// Why an event could not be projected, or the projector could not run.
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error("database failure: {0}")]
    Database(#[from] sqlx::Error),
    #[error("message broker failure: {0}")]
    Broker(#[from] lapin::Error),
    /// The payload is not an event this projection can read: a poison message.
    #[error("{event_type} is not a known {aggregate_type} event: {reason}")]
    UnknownEvent {
        aggregate_type: String,
        event_type: String,
        reason: String,
    },
    /// The event is well-formed but contradicts the read model or the event store.
    #[error("inconsistent event {message_id}: {detail}")]
    Inconsistent { message_id: String, detail: String },
    #[error("consumer on {0} was cancelled by the broker")]
    ConsumerCancelled(String),
    /// A follow-up command a process manager issued failed; whether to retry depends on why.
    #[error("{command} on {aggregate} failed: {source}")]
    Command {
        command: &'static str,
        aggregate: String,
        #[source]
        source: event_store::StoreError,
    },
    /// Only read models can be rebuilt: a process manager's side effects would run again.
    #[error("{0} is not a read model that can be rebuilt")]
    NotRebuildable(String),
    #[error("a rebuild of {0} is already running")]
    RebuildRunning(String),
    /// The task reading the event store for a rebuild ended without handing on all it read.
    #[error("the rebuild's reader failed: {0}")]
    RebuildReader(#[from] tokio::task::JoinError),
    /// A sealed personal field that does not open with its key: a poison message.
    #[error("personal data does not reveal: {0}")]
    Unrevealed(String),
    /// The broker did not take a replayed parked message back.
    #[error("replay refused: {0}")]
    ReplayRefused(String),
}

/// From revealing personal data: the database away is transient, anything else is not.
impl From<event_store::StoreError> for ProjectionError {
    fn from(error: event_store::StoreError) -> Self {
        match error {
            event_store::StoreError::Database(error) => Self::Database(error),
            other => Self::Unrevealed(other.to_string()),
        }
    }
}

impl ProjectionError {
    pub(crate) fn inconsistent(
        event: &event_store::StoredEvent,
        detail: impl Into<String>,
    ) -> Self {
        Self::Inconsistent {
            message_id: event.message_id(),
            detail: detail.into(),
        }
    }

    /// Whether this is a process's command refused by the rule `code`.
    pub fn is_refusal(&self, code: RuleCode) -> bool {
        match self {
            Self::Command { source, .. } => {
                crate::process::issue::settled_refusal(source, &[code]).is_some()
            }
            _ => false,
        }
    }

    /// Failures that say nothing about the event itself (the database is away, a deadlock):
    /// retrying the same event later can succeed, so it must not count towards parking it.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Database(error) => transient_sql(error),
            Self::Broker(_) | Self::ConsumerCancelled(_) => true,
            Self::UnknownEvent { .. }
            | Self::Inconsistent { .. }
            | Self::NotRebuildable(_)
            | Self::RebuildRunning(_)
            | Self::RebuildReader(_)
            | Self::Unrevealed(_) => false,
            Self::ReplayRefused(_) => true,
            Self::Command { source, .. } => transient_command(source),
        }
    }
}

/// A refusal by the aggregate is about the command and will not change on retry; anything that
/// failed on the way to or from the store may pass next time.
pub(crate) fn transient_command(error: &event_store::StoreError) -> bool {
    use event_store::StoreError as E;
    match error {
        E::Rejected(aggregates::DomainError::LookupFailed(_)) => true,
        E::Rejected(_) | E::NotFound(_) | E::VersionMismatch { .. } | E::KeyTaken => false,
        E::Audit(_) | E::Undecodable { .. } => false,
        E::Contended(_)
        | E::Storage(_)
        | E::Unpublished(_)
        | E::Broker(_)
        | E::Unreachable { .. } => true,
        E::Database(error) => transient_sql(error),
    }
}

fn transient_sql(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        // Serialization failure, deadlock, and the server shutting down or refusing connections.
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            matches!(
                code.as_ref(),
                "40001" | "40P01" | "57P01" | "57P02" | "57P03"
            ) || code.starts_with("08")
        }),
        _ => false,
    }
}
