//! Quote: priced line items for one account, through approval to the customer's answer.
mod aggregate;
mod commands;
mod decide;
mod events;
pub mod pricing;
mod services;
#[cfg(test)]
mod tests;

pub use aggregate::{Quote, QuoteStatus};
pub use commands::QuoteCommand;
pub use events::{LineItem, QuoteEvent};
pub use pricing::QuoteTotals;
pub use services::{Facts, QuoteServices, Services};
