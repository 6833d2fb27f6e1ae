//! The one way every aggregate handles a command: gather the outside facts the command needs
//! (async, through the aggregate's cqrs-es `Services`), then decide purely and synchronously.
//! Keeping all I/O in `gather` lets `decide` be read, and tested, as plain rules.
use std::future::Future;

use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;

use crate::DomainError;

/// An aggregate's two halves of handling a command.
pub(crate) trait Decide: Aggregate<Error = DomainError> {
    /// What `decide` may read beyond the aggregate's own state, as plain data.
    type Facts: Send + Sync;

    /// Looks up only the facts `command` needs in the current state (and no others, so a
    /// command that needs none costs no lookup).
    fn gather(
        &self,
        command: &Self::Command,
        services: &Self::Services,
    ) -> impl Future<Output = Result<Self::Facts, DomainError>> + Send;

    /// The events `command` produces, without changing anything.
    fn decide(
        &self,
        command: Self::Command,
        facts: &Self::Facts,
    ) -> Result<Vec<Self::Event>, DomainError>;
}

/// cqrs-es's `Aggregate::handle` for every aggregate: gather, decide, then write (and so
/// apply) each event.
pub(crate) async fn handle<A>(
    aggregate: &mut A,
    command: A::Command,
    services: &A::Services,
    sink: &EventSink<A>,
) -> Result<(), DomainError>
where
    A: Decide,
    A::Command: Send,
{
    let facts = aggregate.gather(&command, services).await?;
    for event in aggregate.decide(command, &facts)? {
        sink.write(event, aggregate).await;
    }
    Ok(())
}

/// A fact `gather` was meant to look up. Missing only if it skipped one `decide` needs, which
/// counts as a failed lookup: nothing is decided on absent facts.
pub(crate) fn gathered<'a, T>(fact: &'a Option<T>, what: &str) -> Result<&'a T, DomainError> {
    fact.as_ref()
        .ok_or_else(|| DomainError::LookupFailed(what.to_owned()))
}
