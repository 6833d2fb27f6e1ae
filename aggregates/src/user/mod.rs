//! User: a person who signs in to one tenant, with roles, an optional partner account and an
//! approval limit. Credentials live with the API layer; only the fact of a change is an event.
mod aggregate;
mod commands;
mod events;
mod services;
#[cfg(test)]
mod tests;

pub use aggregate::User;
pub use commands::UserCommand;
pub use events::UserEvent;
pub use services::{Services, UserServices};
