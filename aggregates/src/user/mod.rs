//! User: a person who signs in to one tenant, with roles, an optional partner account and an
//! approval limit. Credentials live with the API layer; only the fact of a change is an event.
mod commands;
mod decide;
mod events;
mod facts;
mod state;
#[cfg(test)]
mod tests;

pub use commands::UserCommand;
pub use events::UserEvent;
pub use facts::{Services, UserServices};
pub use state::User;
