//! Contract: an agreement with an account, from draft through approval, signatures and its
//! active term(s) to expiry or termination.
mod aggregate;
mod commands;
mod events;
mod services;
#[cfg(test)]
mod tests;

pub use aggregate::{Contract, ContractStatus};
pub use commands::{ContractCommand, QuoteLine};
pub use events::{ContractEvent, ContractLine, Party};
pub use services::{ContractServices, Services};
