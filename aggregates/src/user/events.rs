use cqrs_es::DomainEvent;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{CurrencyCode, Email, Role, Text};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum UserEvent {
    UserRegistered {
        user_id: Uuid,
        email: Email,
        display_name: Text,
        /// Sorted, without duplicates.
        roles: Vec<Role>,
        /// Set exactly when the user is a Partner.
        account_id: Option<Uuid>,
    },
    UserRolesChanged {
        from: Vec<Role>,
        to: Vec<Role>,
        /// The account after the change: set exactly when `to` is Partner.
        account_id: Option<Uuid>,
    },
    PartnerAccountLinked {
        account_id: Uuid,
        previous_account_id: Option<Uuid>,
    },
    ApprovalLimitSet {
        #[serde(with = "rust_decimal::serde::str")]
        amount: Decimal,
        currency: CurrencyCode,
    },
    UserEmailChanged {
        from: Email,
        to: Email,
    },
    /// `by` is the user who changed it: the user themself, or a TenantAdmin resetting it (then
    /// every session of the user should end).
    PasswordChanged {
        by: Uuid,
    },
    UserDeactivated {
        reason: Text,
    },
    UserReactivated {},
    /// The user's personal data is erased: the store forgets their keys, so their e-mail and
    /// name read as [`crate::ERASED`] from now on. Always follows a deactivation.
    UserForgotten {},
}

impl DomainEvent for UserEvent {
    fn event_type(&self) -> String {
        let name = match self {
            Self::UserRegistered { .. } => "UserRegistered",
            Self::UserRolesChanged { .. } => "UserRolesChanged",
            Self::PartnerAccountLinked { .. } => "PartnerAccountLinked",
            Self::ApprovalLimitSet { .. } => "ApprovalLimitSet",
            Self::UserEmailChanged { .. } => "UserEmailChanged",
            Self::PasswordChanged { .. } => "PasswordChanged",
            Self::UserDeactivated { .. } => "UserDeactivated",
            Self::UserReactivated {} => "UserReactivated",
            Self::UserForgotten {} => "UserForgotten",
        };
        name.to_owned()
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}

/// Every version stored so far reads as stored.
impl crate::EventSchema for UserEvent {}
