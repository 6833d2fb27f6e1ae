//! Given/when/then for the aggregates' unit tests, shared by all five: the events a stream
//! holds, the command it is sent, and the events or refusal expected.
use std::fmt::Debug;

use cqrs_es::test::TestFramework;
use cqrs_es::Aggregate;

use crate::{Command, CurrencyCode, DomainError, RuleCode, Text};

/// A command body tied to its aggregate and to the in-memory fake of the aggregate's services,
/// so a test names only its events and command (and, when it needs other facts, its fake).
pub(crate) trait Scenario: Debug + Sized {
    type Aggregate: Aggregate<Command = Command<Self>, Error = DomainError>;
    type Fake;

    /// The fake most tests run against.
    fn fake() -> Self::Fake;

    fn services(fake: Self::Fake) -> Services<Self>;
}

pub(crate) type Event<C> = <<C as Scenario>::Aggregate as Aggregate>::Event;
pub(crate) type Services<C> = <<C as Scenario>::Aggregate as Aggregate>::Services;

pub(crate) async fn expect_events<C: Scenario>(
    given: Vec<Event<C>>,
    command: Command<C>,
    expected: Vec<Event<C>>,
) {
    expect_events_with(C::fake(), given, command, expected).await;
}

pub(crate) async fn expect_events_with<C: Scenario>(
    fake: C::Fake,
    given: Vec<Event<C>>,
    command: Command<C>,
    expected: Vec<Event<C>>,
) {
    TestFramework::<C::Aggregate>::with(C::services(fake))
        .given(given)
        .when_async(command)
        .await
        .then_expect_events(expected);
}

pub(crate) async fn expect_err<C: Scenario>(
    given: Vec<Event<C>>,
    command: Command<C>,
    check: impl Fn(&DomainError) -> bool,
) {
    expect_err_with(C::fake(), given, command, check).await;
}

pub(crate) async fn expect_err_with<C: Scenario>(
    fake: C::Fake,
    given: Vec<Event<C>>,
    command: Command<C>,
    check: impl Fn(&DomainError) -> bool,
) {
    let sent = format!("{:?}", command.body);
    let result = TestFramework::<C::Aggregate>::with(C::services(fake))
        .given(given)
        .when_async(command)
        .await
        .inspect_result();
    match result {
        Err(e) => assert!(check(&e), "{sent}: unexpected error {e:?}"),
        Ok(events) => panic!("{sent}: expected a rejection, got {events:?}"),
    }
}

/// The step of `E`'s upcasters that reads `event_type` stored at version `from`.
pub(crate) fn upcaster<E: crate::EventSchema>(event_type: &str, from: &str) -> crate::Upcaster {
    *E::UPCASTERS
        .iter()
        .find(|step| step.event_type == event_type && step.from == from)
        .unwrap_or_else(|| panic!("no upcaster reads {event_type} {from}"))
}

/// The aggregate's state after `events`, for checks on what `apply` folds.
pub(crate) fn replay<A: Aggregate>(events: Vec<A::Event>) -> A {
    let mut aggregate = A::default();
    for event in events {
        aggregate.apply(event);
    }
    aggregate
}

pub(crate) fn rule(code: RuleCode) -> impl Fn(&DomainError) -> bool + Copy {
    move |e| matches!(e, DomainError::RuleViolated { code: c, .. } if *c == code)
}

pub(crate) fn invalid(field: &'static str) -> impl Fn(&DomainError) -> bool + Copy {
    move |e| matches!(e, DomainError::InvalidField { field: f, .. } if f == field)
}

pub(crate) fn forbidden(e: &DomainError) -> bool {
    matches!(e, DomainError::Forbidden(_))
}

/// Text as the aggregates store it, for expected events.
pub(crate) fn text(s: &str) -> Text {
    Text::parse("t", s, 1000).unwrap()
}

pub(crate) fn eur() -> CurrencyCode {
    CurrencyCode::parse("c", "EUR").unwrap()
}
