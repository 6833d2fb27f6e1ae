//! Read models derived from events, the projector worker that keeps them current, and the
//! process managers and durable timers that run on the same consumer machinery.
//!
//! Every read model is a [`Projection`]: a replayable handler that the projector applies exactly
//! once per event under a per-stream checkpoint, in the same transaction as its table change.
//! **Invariant:** only this crate writes `read.*` tables and `projection_checkpoints`.
#![forbid(unsafe_code)]

pub mod accounts;
pub mod approvals;
pub mod checkpoint;
pub mod consumer;
pub mod contracts;
mod copy_text;
mod error;
pub mod parked;
pub mod process;
mod projection;
pub mod quotes;
mod read_model;
pub mod rebuild;
mod rows;
mod stamp;
pub mod status;
pub mod timers;
pub mod users;

use std::sync::Arc;

pub use accounts::AccountsProjection;
pub use approvals::ApprovalsProjection;
pub use consumer::{applied_positions, parked_count, run, ProjectorConfig};
pub use contracts::{ContractsProjection, SignatoryErasure};
pub use error::ProjectionError;
pub use parked::{handle_parked, ParkedAction};
pub use process::{process_managers, PROCESS_MANAGERS};
pub use projection::Projection;
pub use quotes::QuotesProjection;
pub use rebuild::{rebuild, RebuildProgress, RebuildReport, RebuildScope};
pub use status::{status, Status};
pub use users::UsersProjection;

/// The consumer group feeding every read model.
pub const READ_MODELS: &str = "read-models";

/// The projections the [`READ_MODELS`] group runs.
pub fn read_models() -> Vec<Arc<dyn Projection>> {
    vec![
        Arc::new(AccountsProjection),
        Arc::new(UsersProjection),
        Arc::new(QuotesProjection),
        Arc::new(ApprovalsProjection),
        Arc::new(ContractsProjection),
        // After the contracts: a batch's signing is folded before its forgetting erases it.
        Arc::new(SignatoryErasure),
    ]
}

/// Each consumer group's routing keys (see [`event_store::Topology::routing`]): the read models
/// take every event of their aggregates, the process managers only the events they act on.
pub fn routing() -> std::collections::BTreeMap<String, Vec<String>> {
    let mut read_models: Vec<String> = read_models()
        .iter()
        .flat_map(|projection| projection.routing_keys())
        .collect();
    read_models.sort_unstable();
    read_models.dedup();
    [
        (READ_MODELS.to_owned(), read_models),
        (PROCESS_MANAGERS.to_owned(), process::subscriptions()),
    ]
    .into()
}

/// The read model named `name` (as in `b2b projections rebuild <name>`).
pub fn read_model(name: &str) -> Option<Arc<dyn Projection>> {
    read_models().into_iter().find(|p| p.name() == name)
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
    fn each_aggregate_type_feeds_its_own_read_model() {
        // Forgetting a user or an account's contacts also erases contract signatories.
        let erasure = "contract_signatory_erasure";
        assert_eq!(projections_fed_by("Account"), vec!["accounts", erasure]);
        assert_eq!(projections_fed_by("User"), vec!["users", erasure]);
        assert_eq!(projections_fed_by("Quote"), vec!["quotes"]);
        assert_eq!(projections_fed_by("Approval"), vec!["approvals"]);
        assert_eq!(projections_fed_by("Contract"), vec!["contracts"]);
        assert!(projections_fed_by("Tenant").is_empty());
    }
}
