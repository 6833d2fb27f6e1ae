//! Contract: an agreement with an account, from draft through approval, signatures and its
//! active term(s) to expiry or termination.
mod commands;
mod decide;
mod drafting;
mod events;
mod facts;
mod state;
mod term;
#[cfg(test)]
mod tests;

pub use commands::{ContractCommand, QuoteLine};
pub use events::{ContractEvent, ContractLine, Party};
pub use facts::{ContractServices, Services};
pub use state::{Contract, ContractStatus};
