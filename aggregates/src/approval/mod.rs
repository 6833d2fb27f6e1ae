//! Approval: one request per submission of a quote or contract, approved level by level by the
//! roles the tenant's policy asks for, each level within its SLA.
mod commands;
mod decide;
mod eligibility;
mod events;
mod facts;
mod state;
#[cfg(test)]
mod tests;

pub use commands::ApprovalCommand;
pub use events::{ApprovalEvent, Level, Subject, SubjectType};
pub use facts::{ApprovalServices, Services};
pub use state::{Approval, ApprovalStatus};
