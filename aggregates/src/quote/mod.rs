//! Quote: priced line items for one account, through approval to the customer's answer.
mod commands;
mod decide;
mod events;
mod facts;
mod line_items;
pub mod pricing;
mod state;
#[cfg(test)]
mod tests;

pub use commands::QuoteCommand;
pub(crate) use events::lines_counted_in_pieces;
pub use events::{LineItem, QuoteEvent, Unit};
pub use facts::{QuoteServices, Services};
pub use pricing::QuoteTotals;
pub use state::{Quote, QuoteStatus};
