use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::Actor;

/// A command together with the tenant it runs in, who sends it and the time it is decided at.
/// The time comes from outside so aggregates stay pure and tests can set the clock; the tenant
/// scopes every lookup an aggregate's services make.
#[derive(Debug, Clone, PartialEq)]
pub struct Command<C> {
    pub tenant_id: Uuid,
    pub actor: Actor,
    pub at: DateTime<Utc>,
    pub body: C,
}

/// The commands of one aggregate, as the command API sees them.
pub trait CommandSet {
    /// The command's name, as the API's `type` field and the metrics state it.
    fn name(&self) -> &'static str;

    /// The commands only the system sends (process managers and timers): a user who sends
    /// one is refused (403), and the public API document leaves them out.
    const SYSTEM_ONLY: &'static [&'static str];

    /// Commands whose optional fields must not all be left out (or null): the command's name
    /// and those fields.
    const AT_LEAST_ONE_OF: &'static [(&'static str, &'static [&'static str])] = &[];
}

impl<C> Command<C> {
    pub fn new(tenant_id: Uuid, actor: Actor, at: DateTime<Utc>, body: C) -> Self {
        Self {
            tenant_id,
            actor,
            at,
            body,
        }
    }
}
