//! Account: a customer or partner company the tenant sells to.
mod commands;
mod decide;
mod events;
mod facts;
mod state;
#[cfg(test)]
mod tests;

pub use commands::AccountCommand;
pub use events::{AccountEvent, Tier};
pub use facts::{AccountServices, Services};
pub use state::{Account, AccountFacts, AccountStatus};
