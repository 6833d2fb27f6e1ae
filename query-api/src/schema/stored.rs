//! Enums stored in the read models as the domain's variant names (`PendingApproval`) and shown
//! in GraphQL's enum style (`PENDING_APPROVAL`).

/// Declares such an enum with its stored name and the conversion back from a column, which
/// fails (as an internal error) on a value the schema has no name for.
macro_rules! stored_enum {
    ($(#[$meta:meta])* $name:ident, $column:literal, [$($variant:ident),+ $(,)?]) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, async_graphql::Enum)]
        pub enum $name {
            $($variant),+
        }

        impl $name {
            pub fn as_stored(self) -> &'static str {
                match self {
                    $(Self::$variant => stringify!($variant)),+
                }
            }
        }

        impl TryFrom<String> for $name {
            type Error = $crate::QueryError;

            fn try_from(stored: String) -> Result<Self, Self::Error> {
                match stored.as_str() {
                    $(stringify!($variant) => Ok(Self::$variant),)+
                    _ => Err($crate::QueryError::UnexpectedValue {
                        column: $column,
                        value: stored,
                    }),
                }
            }
        }
    };
}
pub(crate) use stored_enum;

/// A role name as the read models store it.
pub fn role(stored: &str, column: &'static str) -> Result<super::Role, crate::QueryError> {
    stored
        .parse::<aggregates::Role>()
        .map(super::Role::from)
        .map_err(|_| crate::QueryError::UnexpectedValue {
            column,
            value: stored.to_owned(),
        })
}

pub fn role_name(role: super::Role) -> &'static str {
    match role {
        super::Role::TenantAdmin => "TenantAdmin",
        super::Role::Manager => "Manager",
        super::Role::Operator => "Operator",
        super::Role::Viewer => "Viewer",
        super::Role::Partner => "Partner",
    }
}
