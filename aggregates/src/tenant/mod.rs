//! Tenant: the tenant's rule configuration over time. One stream per tenant (its id); each
//! policy change is an event, so an auditor sees when thresholds changed and who changed them.
mod commands;
mod decide;
mod events;
mod facts;
mod state;
#[cfg(test)]
mod tests;

pub use commands::TenantCommand;
pub use events::TenantEvent;
pub use facts::Services;
pub use state::Tenant;
