use chrono::{DateTime, Utc};

use crate::Actor;

/// A command together with who sends it and the time it is decided at. The time comes from
/// outside so aggregates stay pure and tests can set the clock.
#[derive(Debug, Clone, PartialEq)]
pub struct Command<C> {
    pub actor: Actor,
    pub at: DateTime<Utc>,
    pub body: C,
}

impl<C> Command<C> {
    pub fn new(actor: Actor, at: DateTime<Utc>, body: C) -> Self {
        Self { actor, at, body }
    }
}
