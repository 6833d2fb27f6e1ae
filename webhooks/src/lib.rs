//! Outgoing webhooks: TenantAdmins register endpoints (`store`, under the rules of `endpoint`
//! and `target`); the `webhooks` consumer group records a delivery per matching event and
//! endpoint (`outbox`); the delivery worker sends them, signed per Standard Webhooks
//! (`signature`), in order per aggregate and endpoint, retried with backoff (`sender`).
#![forbid(unsafe_code)]

pub mod endpoint;
pub mod outbox;
pub mod sender;
pub mod signature;
pub mod store;
pub mod target;

use aggregates::DomainError;

pub use outbox::{WebhookOutbox, WEBHOOKS};
pub use sender::{RetrySchedule, SenderConfig};
pub use store::Endpoints;
pub use target::Reach;

/// Why a webhook command failed.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The rules refused it.
    #[error(transparent)]
    Rejected(#[from] DomainError),
    #[error("database failure: {0}")]
    Database(#[from] sqlx::Error),
}
