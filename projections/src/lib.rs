//! Read models derived from events, and the projector worker that keeps them current.
//!
//! Every read model is a [`Projection`]: a replayable handler that the projector applies exactly
//! once per event under a per-stream checkpoint, in the same transaction as its table change.
//! **Invariant:** only this crate writes `read.*` tables and `projection_checkpoints`.
#![forbid(unsafe_code)]

pub mod accounts;
pub mod checkpoint;
pub mod consumer;
mod error;
mod projection;

use std::sync::Arc;

pub use accounts::AccountsProjection;
pub use consumer::{parked_count, run, ProjectorConfig};
pub use error::ProjectionError;
pub use projection::Projection;

/// The consumer group feeding every read model.
pub const READ_MODELS: &str = "read-models";

/// The projections the [`READ_MODELS`] group runs.
pub fn read_models() -> Vec<Arc<dyn Projection>> {
    vec![Arc::new(AccountsProjection)]
}

/// Names of the read models an aggregate type feeds: a reader who just wrote to such an
/// aggregate waits on these checkpoints to read its own write.
pub fn projections_fed_by(aggregate_type: &str) -> Vec<&'static str> {
    read_models()
        .iter()
        .filter(|projection| projection.handles(aggregate_type))
        .map(|projection| projection.name())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_are_fed_by_account_events_only() {
        assert_eq!(projections_fed_by("Account"), vec!["accounts"]);
        assert!(projections_fed_by("Quote").is_empty());
    }
}
