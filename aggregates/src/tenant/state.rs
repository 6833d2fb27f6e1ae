//! The tenant's state, as far as its rules need it, and the `apply` that folds its events into
//! it. cqrs-es's `Aggregate` is implemented here; `handle` is the crate's one generic one.
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};

use super::{Services, TenantCommand, TenantEvent};
use uuid::Uuid;

use crate::{Command, DomainError, Personal, PersonalData, TenantPolicy};

/// The policy last set, `None` while the tenant runs on the defaults.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Tenant {
    pub(super) policy: Option<TenantPolicy>,
}

impl Aggregate for Tenant {
    const TYPE: &'static str = "Tenant";
    type Command = Command<TenantCommand>;
    type Event = TenantEvent;
    type Error = DomainError;
    type Services = Services;

    async fn handle(
        &mut self,
        command: Self::Command,
        services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), DomainError> {
        crate::handle::handle(self, command, services, sink).await
    }

    fn apply(&mut self, event: TenantEvent) {
        match event {
            TenantEvent::TenantPolicySet { policy } => self.policy = Some(policy),
        }
    }
}

impl PersonalData for Tenant {
    /// The tenant's policy is configuration, about no person.
    fn personal_data(&self, _: &str, _: &TenantEvent, _: Option<Uuid>) -> Option<Personal> {
        None
    }
}
