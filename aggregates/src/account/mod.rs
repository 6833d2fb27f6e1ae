//! Account: a customer or partner company the tenant sells to.
mod aggregate;
mod commands;
mod events;
mod services;
#[cfg(test)]
mod tests;

pub use aggregate::{Account, AccountFacts, AccountStatus};
pub use commands::AccountCommand;
pub use events::{AccountEvent, Tier};
pub use services::{AccountServices, Services};
