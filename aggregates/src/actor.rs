use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{DomainError, Money};

/// What approval and user rules need to know about another user, looked up through services.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserFacts {
    pub user_id: Uuid,
    pub roles: Vec<Role>,
    pub approval_limit: Option<Money>,
    pub account_id: Option<Uuid>,
    pub active: bool,
}

/// A role a user holds inside one tenant.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
    strum::EnumString,
    strum::IntoStaticStr,
)]
#[strum(parse_err_ty = DomainError, parse_err_fn = unknown_role)]
pub enum Role {
    TenantAdmin,
    Manager,
    Operator,
    Viewer,
    Partner,
}

impl Role {
    /// The name the wire, the read models and BI tools use.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

fn unknown_role(name: &str) -> DomainError {
    DomainError::invalid("roles", format!("unknown role `{name}`"))
}

/// Who issues a command: a signed-in user, or one of our own processes (a process manager or a
/// timer), which acts on behalf of the system and never on a user's roles.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Actor {
    User {
        user_id: Uuid,
        roles: Vec<Role>,
        /// The one account a Partner user is linked to.
        account_id: Option<Uuid>,
    },
    System {
        process: String,
    },
}

impl Actor {
    pub fn user(user_id: Uuid, roles: Vec<Role>) -> Self {
        Self::User {
            user_id,
            roles,
            account_id: None,
        }
    }

    pub fn system(process: impl Into<String>) -> Self {
        Self::System {
            process: process.into(),
        }
    }

    pub fn is_system(&self) -> bool {
        matches!(self, Self::System { .. })
    }

    pub fn has_any(&self, wanted: &[Role]) -> bool {
        match self {
            Self::User { roles, .. } => roles.iter().any(|r| wanted.contains(r)),
            Self::System { .. } => false,
        }
    }

    /// Passes when the actor is a user holding one of `wanted`, or the system.
    pub fn require_any(&self, wanted: &[Role], action: &str) -> Result<(), DomainError> {
        if self.is_system() || self.has_any(wanted) {
            Ok(())
        } else {
            Err(DomainError::Forbidden(format!(
                "{action} needs one of the roles {wanted:?}"
            )))
        }
    }

    /// Passes only for a signed-in user holding one of `wanted`, never the system: for acts a
    /// person must answer for (forgetting someone), which no process makes on its own.
    pub fn require_person(&self, wanted: &[Role], action: &str) -> Result<(), DomainError> {
        if self.has_any(wanted) {
            Ok(())
        } else {
            Err(DomainError::Forbidden(format!(
                "{action} is for a user holding one of the roles {wanted:?}"
            )))
        }
    }

    /// Passes only for our own processes: some transitions are never a user's to make.
    pub fn require_system(&self, action: &str) -> Result<(), DomainError> {
        if self.is_system() {
            Ok(())
        } else {
            Err(DomainError::Forbidden(format!(
                "{action} is done by the system, not by a user"
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_and_print_by_their_wire_names_and_refuse_others() {
        for role in [
            Role::TenantAdmin,
            Role::Manager,
            Role::Operator,
            Role::Viewer,
            Role::Partner,
        ] {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
            assert_eq!(serde_json::to_value(role).unwrap(), role.as_str());
        }
        assert_eq!(
            "Boss".parse::<Role>(),
            Err(DomainError::invalid("roles", "unknown role `Boss`"))
        );
    }
}
