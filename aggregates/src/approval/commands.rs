use rust_decimal::Decimal;
use serde::Deserialize;
use uuid::Uuid;

use super::SubjectType;

/// Commands as clients send them: raw fields, validated by the aggregate. Externally tagged
/// (`{"ApproveLevel": {"comment": "ok"}}`); the HTTP layer maps its `{"type": ...}` form onto this.
#[derive(Debug, Clone, PartialEq, Deserialize, schemars::JsonSchema, strum::IntoStaticStr)]
#[serde(deny_unknown_fields)]
pub enum ApprovalCommand {
    /// Issued by the approval process when a quote or contract is submitted; the chain of levels
    /// comes from the tenant's policy, never from the caller.
    RequestApproval {
        subject_type: SubjectType,
        subject_id: Uuid,
        /// The subject's version that was submitted, so the outcome applies to that version only.
        subject_version: u64,
        #[schemars(with = "String", extend("format" = "decimal"))]
        #[serde(with = "rust_decimal::serde::str")]
        amount: Decimal,
        currency: String,
        requester_id: Uuid,
    },
    /// Approves the current level.
    ApproveLevel {
        comment: Option<String>,
    },
    /// Rejects the request at the current level: the chain ends.
    RejectApproval {
        reason: String,
    },
    /// Hands the current level to one named, eligible user.
    DelegateLevel {
        to_user_id: Uuid,
    },
    /// Issued by the SLA timer once the current level is overdue.
    EscalateLevel {},
    CancelApproval {
        reason: String,
    },
}

impl crate::CommandSet for ApprovalCommand {
    fn name(&self) -> &'static str {
        self.into()
    }

    const SYSTEM_ONLY: &'static [&'static str] = &["RequestApproval", "EscalateLevel"];
}

impl ApprovalCommand {
    pub fn name(&self) -> &'static str {
        match self {
            Self::RequestApproval { .. } => "RequestApproval",
            Self::ApproveLevel { .. } => "ApproveLevel",
            Self::RejectApproval { .. } => "RejectApproval",
            Self::DelegateLevel { .. } => "DelegateLevel",
            Self::EscalateLevel {} => "EscalateLevel",
            Self::CancelApproval { .. } => "CancelApproval",
        }
    }
}
