//! The tenant's rules: `decide` returns the events a command produces without changing anything.
use super::facts::{Facts, Services};
use super::{Tenant, TenantCommand, TenantEvent};
use crate::handle::Decide;
use crate::{Actor, Command, DomainError};

impl Decide for Tenant {
    type Facts = Facts;

    async fn gather(
        &self,
        _command: &Command<TenantCommand>,
        _services: &Services,
    ) -> Result<Facts, DomainError> {
        Ok(())
    }

    fn decide(
        &self,
        command: Command<TenantCommand>,
        _facts: &Facts,
    ) -> Result<Vec<TenantEvent>, DomainError> {
        // Tenant configuration is the operator's: no user of the tenant sets it.
        if let Actor::User { .. } = command.actor {
            return Err(DomainError::Forbidden(
                "the tenant's policy is set by the operator".into(),
            ));
        }
        match command.body {
            TenantCommand::SetPolicy { policy } => {
                policy.validate()?;
                // Setting the policy in force again changes nothing, so records nothing.
                if self.policy.as_ref() == Some(&policy) {
                    return Ok(vec![]);
                }
                Ok(vec![TenantEvent::TenantPolicySet { policy }])
            }
        }
    }
}
