use serde::Deserialize;

use crate::TenantPolicy;

/// Commands as the operator's CLI sends them (`b2b tenant set-policy`).
#[derive(Debug, Clone, PartialEq, Deserialize, schemars::JsonSchema, strum::IntoStaticStr)]
#[serde(deny_unknown_fields)]
pub enum TenantCommand {
    /// Replaces the tenant's rule configuration.
    SetPolicy {
        #[schemars(with = "serde_json::Value")]
        policy: TenantPolicy,
    },
}

impl crate::CommandSet for TenantCommand {
    fn name(&self) -> &'static str {
        self.into()
    }

    const SYSTEM_ONLY: &'static [&'static str] = &["SetPolicy"];
}
