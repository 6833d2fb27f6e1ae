//! Process managers: consumers that turn events into commands on other aggregates.
//!
//! Each process manager is a [`Projection`] run by the ordinary consumer (group
//! [`PROCESS_MANAGERS`]), so it inherits the projector's guarantees: per-stream order, a
//! checkpoint that skips redeliveries, and a catch-up from the event store that replays what a
//! gap skipped. The commands they send run through the [`event_store::CommandBus`] in their own
//! transactions, committed before the checkpoint: a crash in between re-issues them on
//! redelivery, which is why every command is idempotent for the aggregate (ids derived from the
//! causing event, keyed with the deployment's secret: see [`ProcessIds`]).
//!
//! In esrs's terms [`ApprovalFlow`], [`QuoteAcceptance`] and [`ContractAccounts`] are
//! **eventual** handlers: they have side effects (commands) outside the checkpoint's
//! transaction and handle their own errors (an expected refusal is done, a transient failure is
//! retried). They are not replayable: a rebuild must not run them, since the commands already
//! happened. [`TimerScheduling`] is **transactional with its checkpoint** (its rows commit with
//! it) and replay-safe (it only inserts rows with derived ids).
mod approval_flow;
mod contract_accounts;
pub mod issue;
mod quote_acceptance;
mod reactor;
mod timer_scheduling;

use std::sync::Arc;

use event_store::{CommandBus, StoredEvent};
use uuid::Uuid;

pub use approval_flow::ApprovalFlow;
pub use contract_accounts::ContractAccounts;
pub use issue::{Issuer, ProcessIds, NAMESPACE};
pub use quote_acceptance::QuoteAcceptance;
pub use reactor::{Reacting, Reactor};
pub use timer_scheduling::TimerScheduling;

use aggregates::RuleCode;

use crate::{Projection, ProjectionError};
use event_store::Clock;

/// The consumer group every process manager runs in.
pub const PROCESS_MANAGERS: &str = "process-managers";

/// The process managers the [`PROCESS_MANAGERS`] group runs. `clock` gives the time their
/// commands are decided at; `ids` the ids of what they create.
pub fn process_managers(
    bus: Arc<CommandBus>,
    ids: ProcessIds,
    clock: Arc<dyn Clock>,
) -> Vec<Arc<dyn Projection>> {
    let issuer = |name| Issuer::new(bus.clone(), ids.clone(), clock.clone(), name);
    vec![
        Arc::new(Reacting(ApprovalFlow::new(issuer(ApprovalFlow::NAME)))),
        Arc::new(Reacting(QuoteAcceptance::new(issuer(
            QuoteAcceptance::NAME,
        )))),
        Arc::new(Reacting(ContractAccounts::new(issuer(
            ContractAccounts::NAME,
        )))),
        Arc::new(Reacting(TimerScheduling::new(ids.clone()))),
    ]
}

pub(crate) use crate::stamp::decode;

/// The event's stream id as a UUID (every aggregate id is one).
pub(crate) fn aggregate_uuid(event: &StoredEvent) -> Result<Uuid, ProjectionError> {
    event
        .aggregate_id
        .parse()
        .map_err(|_| ProjectionError::inconsistent(event, "the aggregate id is not a UUID"))
}

/// A closed or suspended account takes no contract and no activation: retrying cannot help,
/// and the refusal is in the log.
pub(crate) const ACCOUNT_REFUSALS: &[RuleCode] =
    &[RuleCode::AccountClosed, RuleCode::AccountSuspended];

/// Each process manager's name and routing keys.
pub fn subscriptions_by_process() -> Vec<(&'static str, Vec<String>)> {
    [
        (ApprovalFlow::NAME, ApprovalFlow::SUBSCRIBES),
        (QuoteAcceptance::NAME, QuoteAcceptance::SUBSCRIBES),
        (ContractAccounts::NAME, ContractAccounts::SUBSCRIBES),
        (TimerScheduling::NAME, TimerScheduling::SUBSCRIBES),
    ]
    .into_iter()
    .map(|(name, subscribes)| (name, reactor::routing_keys(subscribes)))
    .collect()
}

/// The routing keys of every process manager: what the [`PROCESS_MANAGERS`] group is bound to.
pub fn subscriptions() -> Vec<String> {
    let mut keys: Vec<String> = subscriptions_by_process()
        .into_iter()
        .flat_map(|(_, keys)| keys)
        .collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}
