use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use crate::TenantPolicy;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TenantEvent {
    /// The whole policy the rules apply from now on (not a difference: each event reads alone).
    TenantPolicySet { policy: TenantPolicy },
}

impl DomainEvent for TenantEvent {
    fn event_type(&self) -> String {
        match self {
            Self::TenantPolicySet { .. } => "TenantPolicySet".to_owned(),
        }
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}

/// Every version stored so far reads as stored.
impl crate::EventSchema for TenantEvent {}
