//! Enums stored in the read models as the domain's variant names (`PendingApproval`) and shown
//! in GraphQL's enum style (`PENDING_APPROVAL`).

/// Declares such an enum with its stored name and the conversion back from a column, which
/// fails (as an internal error) on a value the schema has no name for.
macro_rules! stored_enum {
    ($(#[$meta:meta])* $name:ident, $column:literal, [$($variant:ident),+ $(,)?]) => {
        $(#[$meta])*
        #[derive(
            Debug,
            Clone,
            Copy,
            PartialEq,
            Eq,
            async_graphql::Enum,
            strum::EnumString,
            strum::IntoStaticStr,
        )]
        pub enum $name {
            $($variant),+
        }

        impl $name {
            pub fn as_stored(self) -> &'static str {
                self.into()
            }
        }

        impl TryFrom<String> for $name {
            type Error = $crate::QueryError;

            fn try_from(stored: String) -> Result<Self, Self::Error> {
                stored
                    .parse()
                    .map_err(|_| $crate::QueryError::UnexpectedValue {
                        column: $column,
                        value: stored,
                    })
            }
        }
    };
}
pub(crate) use stored_enum;

/// A role name as the read models store it.
pub fn role(stored: &str, column: &'static str) -> Result<super::Role, crate::QueryError> {
    stored
        .parse::<super::Role>()
        .map_err(|_| crate::QueryError::UnexpectedValue {
            column,
            value: stored.to_owned(),
        })
}
