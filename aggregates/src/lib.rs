//! The aggregates of b2b (the five of the sales domain, and the tenant's own configuration) and
//! the vocabulary they share.
//!
//! Everything here is pure: no I/O, no clock, no database. A command arrives wrapped in a
//! [`Command`] that carries who sends it and when, so every rule (roles, attribute rules, time
//! windows) is decided here however the command reached us.
//!
//! Every aggregate module has one shape: `commands`, `events`, `state` (the aggregate and the
//! `apply` that folds its events), `facts` (its cqrs-es `Services` trait, and the facts one
//! command needs, gathered through it), `decide` (pure and synchronous: state, command and facts
//! in, events or a [`DomainError`] out) and `tests/`. cqrs-es's `handle` is one generic
//! function, `handle::handle`, over the `Decide` trait each aggregate implements.
#![forbid(unsafe_code)]

pub mod account;
mod actor;
pub mod approval;
mod command;
pub mod contract;
pub mod decimal;
mod error;
mod handle;
mod money;
pub mod personal;
pub mod policy;
pub mod quote;
mod rule_code;
pub mod schema;
pub mod tenant;
#[cfg(test)]
mod testing;
pub mod user;
mod values;

pub use actor::{Actor, Role, UserFacts};
pub use command::{Command, CommandSet};
pub use error::DomainError;
pub use money::Money;
pub use personal::{Personal, PersonalData, Subject, ERASED};
pub use policy::TenantPolicy;
pub use rule_code::RuleCode;
pub use schema::{EventSchema, Upcaster};
pub mod limits;
pub use values::{CountryCode, CurrencyCode, Email, Text};
