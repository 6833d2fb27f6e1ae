use rust_decimal::Decimal;
use serde::Deserialize;
use uuid::Uuid;

use crate::Role;

/// Commands as clients send them: raw fields, validated by the aggregate. Externally tagged
/// (`{"ChangeRoles": {"roles": ["Manager"]}}`); the HTTP layer maps its `{"type": ...}` form
/// onto this.
#[derive(Debug, Clone, PartialEq, Deserialize, schemars::JsonSchema, strum::IntoStaticStr)]
#[serde(deny_unknown_fields)]
pub enum UserCommand {
    RegisterUser {
        /// The id of the user's stream (the id in the request path). The aggregate is not told
        /// its own id, and it needs it to tell "the user themself" from an admin, so the command
        /// carries it and `UserRegistered` records it.
        user_id: Uuid,
        email: String,
        display_name: String,
        roles: Vec<Role>,
        /// Required for a Partner, refused for everyone else.
        account_id: Option<Uuid>,
    },
    /// Replaces the user's roles. Making someone a Partner needs the account they act for;
    /// taking Partner away drops the link.
    ChangeRoles {
        roles: Vec<Role>,
        account_id: Option<Uuid>,
    },
    /// Moves a Partner to another account.
    LinkPartnerAccount {
        account_id: Uuid,
    },
    SetApprovalLimit {
        #[schemars(with = "String", extend("format" = "decimal"))]
        #[serde(deserialize_with = "crate::decimal::wire::deserialize")]
        amount: Decimal,
        currency: String,
    },
    ChangeEmail {
        email: String,
    },
    /// Records that the password was changed (by the user, or reset by a TenantAdmin). The API
    /// layer stores the new hash; it never enters a command or an event.
    ChangePassword {},
    DeactivateUser {
        reason: String,
    },
    ReactivateUser {},
    /// Erases the user's personal data for good (GDPR erasure): an active user is deactivated
    /// first, and every later command on the user is refused.
    ForgetUser {},
}

impl crate::CommandSet for UserCommand {
    fn name(&self) -> &'static str {
        self.into()
    }

    const SYSTEM_ONLY: &'static [&'static str] = &[];
}

impl UserCommand {
    pub fn name(&self) -> &'static str {
        match self {
            Self::RegisterUser { .. } => "RegisterUser",
            Self::ChangeRoles { .. } => "ChangeRoles",
            Self::LinkPartnerAccount { .. } => "LinkPartnerAccount",
            Self::SetApprovalLimit { .. } => "SetApprovalLimit",
            Self::ChangeEmail { .. } => "ChangeEmail",
            Self::ChangePassword {} => "ChangePassword",
            Self::DeactivateUser { .. } => "DeactivateUser",
            Self::ReactivateUser {} => "ReactivateUser",
            Self::ForgetUser {} => "ForgetUser",
        }
    }
}
