//! The crate's one error type and its two faces: an HTTP problem (`application/problem+json`)
//! for failures before GraphQL runs, and a GraphQL error with `extensions.code` inside a
//! response. Internal detail goes to the log only.
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use async_graphql::{ErrorExtensions, ServerError};
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("the access token is missing, expired or invalid, or its session has ended")]
    Unauthorized,
    /// The caller's rate limit or its account's API quota is used up for this minute.
    #[error("{detail}")]
    TooManyRequests { detail: String, retry_after: u32 },
    /// An argument the client sent is out of range or unreadable (a bad `first`, a bad cursor).
    #[error("{0}")]
    BadUserInput(String),
    /// The caller's role may not read this at all (a Partner asking for the tenant's audit log).
    #[error("{0}")]
    Forbidden(String),
    #[error("the body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// A request header the client sent is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// The read models did not reach the version the client asked to read.
    #[error("{0}")]
    StaleRead(String),
    /// Too many requests are waiting already; try again shortly.
    #[error("{detail}")]
    Busy { detail: String, retry_after: u32 },
    /// A read-model row holds a value the schema has no name for: a projection bug.
    #[error("read model column `{column}` holds unexpected value `{value}`")]
    UnexpectedValue { column: &'static str, value: String },
    /// A stored event does not decode into its aggregate's event type, so the stream cannot
    /// be replayed: an event schema changed without an upcaster.
    #[error("event {sequence} of {aggregate_type} {aggregate_id} does not replay: {reason}")]
    UndecodableEvent {
        aggregate_type: String,
        aggregate_id: String,
        sequence: i64,
        reason: String,
    },
    /// A sealed personal field does not open with its key: the stored event was altered.
    #[error("personal data does not reveal: {0}")]
    Unrevealed(String),
    /// A resolver ran after the request had ended its transaction: a bug in this crate.
    #[error("the request's transaction has already ended")]
    TransactionEnded,
    #[error("database error")]
    Database(#[from] sqlx::Error),
}

/// From revealing personal data (`event_store::personal`).
impl From<event_store::StoreError> for QueryError {
    fn from(error: event_store::StoreError) -> Self {
        match error {
            event_store::StoreError::Database(error) => Self::Database(error),
            other => Self::Unrevealed(other.to_string()),
        }
    }
}

impl QueryError {
    /// The stable code clients switch on (`extensions.code`).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthorized => "UNAUTHENTICATED",
            Self::TooManyRequests { .. } => "TOO_MANY_REQUESTS",
            Self::BadUserInput(_) => "BAD_USER_INPUT",
            Self::Forbidden(_) => "FORBIDDEN",
            Self::BadRequest(_) => "BAD_REQUEST",
            Self::PayloadTooLarge(_) => "PAYLOAD_TOO_LARGE",
            Self::StaleRead(_) => "STALE_READ",
            Self::Busy { .. } => "SERVICE_UNAVAILABLE",
            Self::UnexpectedValue { .. }
            | Self::UndecodableEvent { .. }
            | Self::Unrevealed(_)
            | Self::TransactionEnded
            | Self::Database(_) => "INTERNAL",
        }
    }

    /// The problem `type` of an HTTP-level refusal, named as the command API names its own.
    fn problem_type(&self) -> &'static str {
        match self {
            Self::Unauthorized => "/problems/unauthorized",
            Self::TooManyRequests { .. } => "/problems/too-many-requests",
            Self::PayloadTooLarge(_) => "/problems/payload-too-large",
            Self::BadUserInput(_) | Self::BadRequest(_) => "/problems/bad-request",
            Self::Forbidden(_) => "/problems/forbidden",
            Self::StaleRead(_) => "/problems/stale-read",
            Self::Busy { .. } => "/problems/busy",
            _ => "/problems/internal",
        }
    }

    fn is_internal(&self) -> bool {
        self.code() == "INTERNAL"
    }

    /// What the client may read: our own wording for client errors, nothing for internal ones.
    fn public_message(&self) -> String {
        if self.is_internal() {
            "internal error".to_owned()
        } else {
            self.to_string()
        }
    }

    /// Internal errors are logged with their cause chain once, where they leave the crate.
    fn log_if_internal(&self) {
        if self.is_internal() {
            tracing::error!(error = %self, cause = ?std::error::Error::source(self), "query failed");
        }
    }

    /// A top-level error for a response that never ran the query (so no location or path).
    pub(crate) fn into_server_error(self) -> ServerError {
        let error = self.extend();
        let mut server_error = ServerError::new(error.message, None);
        server_error.extensions = error.extensions;
        server_error
    }
}

impl From<auth::AuthError> for QueryError {
    fn from(error: auth::AuthError) -> Self {
        match (error.retry_after(), error) {
            (Some(retry_after), error) => Self::TooManyRequests {
                detail: error.to_string(),
                retry_after,
            },
            (None, auth::AuthError::Database(cause)) => Self::Database(cause),
            (None, auth::AuthError::StoredRole(value)) => Self::UnexpectedValue {
                column: "user_credentials.roles",
                value,
            },
            (None, _) => Self::Unauthorized,
        }
    }
}

impl ErrorExtensions for QueryError {
    fn extend(&self) -> async_graphql::Error {
        self.log_if_internal();
        let code = self.code();
        async_graphql::Error::new(self.public_message()).extend_with(|_, ext| ext.set("code", code))
    }
}

/// RFC 9457 problem details.
#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    title: &'a str,
    status: u16,
    detail: String,
}

impl ResponseError for QueryError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::BadUserInput(_) | Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::StaleRead(_) => StatusCode::CONFLICT,
            Self::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::UnexpectedValue { .. }
            | Self::UndecodableEvent { .. }
            | Self::Unrevealed(_)
            | Self::TransactionEnded
            | Self::Database(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        self.log_if_internal();
        let status = self.status_code();
        let problem = Problem {
            kind: self.problem_type(),
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail: self.public_message(),
        };
        let mut response = HttpResponse::build(status);
        match self {
            Self::Unauthorized => {
                response.insert_header(("WWW-Authenticate", "Bearer"));
            }
            Self::TooManyRequests { retry_after, .. } | Self::Busy { retry_after, .. } => {
                response.insert_header(("Retry-After", retry_after.to_string()));
            }
            _ => {}
        }
        response
            .content_type("application/problem+json")
            .json(problem)
    }
}
