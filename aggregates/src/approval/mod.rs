//! Approval: one request per submission of a quote or contract, approved level by level by the
//! roles the tenant's policy asks for, each level within its SLA.
mod aggregate;
mod commands;
mod eligibility;
mod events;
mod rules;
mod services;
#[cfg(test)]
mod tests;

pub use aggregate::{Approval, ApprovalStatus};
pub use commands::ApprovalCommand;
pub use events::{ApprovalEvent, Level, Subject, SubjectType};
pub use services::ApprovalServices;
