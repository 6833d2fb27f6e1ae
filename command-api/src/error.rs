use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use aggregates::DomainError;
use auth::AuthError;
use event_store::StoreError;
use schemars::JsonSchema;
use serde::Serialize;

/// Everything a command request can fail with. Each maps to one status in `status_code`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("the body is not valid JSON: {0}")]
    MalformedJson(String),
    #[error("unknown command type `{0}`")]
    UnknownCommand(String),
    #[error("{0}")]
    InvalidInput(FieldError),
    #[error("{0}")]
    BadHeader(String),
    #[error("missing, expired or invalid credentials")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{message}")]
    RuleViolated { code: &'static str, message: String },
    #[error("the body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    #[error("the body must be application/json, not {0}")]
    UnsupportedMediaType(String),
    #[error("the body did not arrive within {0} seconds")]
    BodyTimeout(u64),
    #[error("{detail}")]
    TooManyRequests { detail: String, retry_after: u32 },
    #[error("internal error")]
    Internal(String),
}

/// One field-level problem: which field to fix, and why.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// RFC 9457 problem details, the body of every error answer.
#[derive(Serialize, JsonSchema)]
pub(crate) struct Problem<'a> {
    /// `/problems/<kind>`; a business rule adds its code: `/problems/rule-violated/<code>`.
    #[serde(rename = "type")]
    #[schemars(extend("format" = "uri-reference"))]
    kind: String,
    title: &'a str,
    /// The HTTP status, repeated.
    status: u16,
    detail: String,
    /// Field-level problems; present only when there are some.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    errors: Vec<FieldError>,
}

impl ApiError {
    fn slug_and_title(&self) -> (&'static str, &'static str) {
        match self {
            Self::MalformedJson(_) => ("malformed-json", "Malformed JSON"),
            Self::UnknownCommand(_) => ("unknown-command", "Unknown command type"),
            Self::InvalidInput(_) => ("validation", "Invalid input"),
            Self::BadHeader(_) => ("bad-header", "Invalid header"),
            Self::Unauthorized => ("unauthorized", "Unauthorized"),
            Self::Forbidden(_) => ("forbidden", "Forbidden"),
            Self::NotFound(_) => ("not-found", "Not found"),
            Self::Conflict(_) => ("version-conflict", "Version conflict"),
            Self::RuleViolated { .. } => ("rule-violated", "Business rule violated"),
            Self::PayloadTooLarge(_) => ("payload-too-large", "Payload too large"),
            Self::UnsupportedMediaType(_) => ("unsupported-media-type", "Unsupported media type"),
            Self::BodyTimeout(_) => ("request-timeout", "Request timeout"),
            Self::TooManyRequests { .. } => ("too-many-requests", "Too many requests"),
            Self::Internal(_) => ("internal", "Internal error"),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::MalformedJson(_) | Self::UnknownCommand(_) | Self::InvalidInput(_) => {
                StatusCode::BAD_REQUEST
            }
            Self::BadHeader(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::RuleViolated { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let (slug, title) = self.slug_and_title();
        let detail = match self {
            // The cause goes to the log only.
            Self::Internal(cause) => {
                tracing::error!(%cause, "command request failed");
                "something went wrong on our side; nothing was changed".to_owned()
            }
            other => other.to_string(),
        };
        let problem_type = match self {
            Self::RuleViolated { code, .. } => format!("/problems/{slug}/{code}"),
            _ => format!("/problems/{slug}"),
        };
        let errors = match self {
            Self::InvalidInput(field) => vec![field.clone()],
            _ => vec![],
        };
        let mut response = HttpResponse::build(self.status_code());
        response.insert_header((header::CONTENT_TYPE, "application/problem+json"));
        match self {
            Self::Unauthorized => {
                response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
            }
            Self::TooManyRequests { retry_after, .. } => {
                response.insert_header((header::RETRY_AFTER, retry_after.to_string()));
            }
            _ => {}
        }
        response.json(Problem {
            kind: problem_type,
            title,
            status: self.status_code().as_u16(),
            detail,
            errors,
        })
    }
}

/// A problem body for an error answered outside the routes (no such route, a method the path
/// does not take, a refused browser origin), so every error a client sees has one shape.
pub fn problem_for_status(status: StatusCode) -> serde_json::Value {
    let (slug, detail) = match status {
        StatusCode::NOT_FOUND => ("not-found", "no such route"),
        StatusCode::METHOD_NOT_ALLOWED => (
            "method-not-allowed",
            "the path does not take this method; `Allow` lists the ones it does",
        ),
        StatusCode::BAD_REQUEST => (
            "bad-request",
            "the request was refused before it reached a route (for example, a browser origin \
             this API does not allow)",
        ),
        _ => ("http-error", "the request was refused"),
    };
    let title = status.canonical_reason().unwrap_or("Error");
    serde_json::to_value(Problem {
        kind: format!("/problems/{slug}"),
        title,
        status: status.as_u16(),
        detail: detail.to_owned(),
        errors: vec![],
    })
    .expect("a problem serialises")
}

impl From<DomainError> for ApiError {
    fn from(error: DomainError) -> Self {
        match error {
            DomainError::InvalidField { field, message } => {
                Self::InvalidInput(FieldError { field, message })
            }
            DomainError::Forbidden(message) => Self::Forbidden(message),
            DomainError::NotFound(what) => Self::NotFound(format!("no such {what}")),
            DomainError::RuleViolated { code, message } => Self::RuleViolated {
                code: code.as_str(),
                message,
            },
            lookup @ DomainError::LookupFailed(_) => Self::Internal(lookup.to_string()),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Rejected(domain) => domain.into(),
            // Worded as the aggregate words an id that exists nowhere: the two are one answer.
            StoreError::NotFound(kind) => {
                Self::NotFound(format!("no such {}", kind.to_lowercase()))
            }
            e @ (StoreError::VersionMismatch { .. } | StoreError::Contended(_)) => {
                Self::Conflict(e.to_string())
            }
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        if let Some(retry_after) = error.retry_after() {
            return Self::TooManyRequests {
                detail: error.to_string(),
                retry_after,
            };
        }
        match error {
            AuthError::InvalidToken
            | AuthError::InvalidCredentials
            | AuthError::InvalidSecondFactor
            | AuthError::InvalidRefreshToken => Self::Unauthorized,
            AuthError::InvalidInput { field, message } => Self::InvalidInput(FieldError {
                field: field.to_owned(),
                message,
            }),
            AuthError::Refused(domain) => domain.into(),
            AuthError::WeakPassword => Self::InvalidInput(FieldError {
                field: "password".to_owned(),
                message: error.to_string(),
            }),
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<webhooks::WebhookError> for ApiError {
    fn from(error: webhooks::WebhookError) -> Self {
        match error {
            webhooks::WebhookError::Rejected(domain) => domain.into(),
            webhooks::WebhookError::Database(e) => e.into(),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        Self::Internal(error.to_string())
    }
}
