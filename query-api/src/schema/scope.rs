//! What a caller may see inside their tenant. A Partner user acts for exactly one account and
//! sees only that account's quotes, contracts, approvals and users; everyone else sees the
//! whole tenant. Enforced in SQL by every resolver that reads such rows.
use aggregates::Role;
use auth::Claims;
use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountScope {
    Tenant,
    Account(Uuid),
    /// A Partner token without an account: it may see no account's rows.
    Nothing,
}

impl AccountScope {
    pub fn of(claims: &Claims) -> Self {
        if !claims.roles.contains(&Role::Partner) {
            return Self::Tenant;
        }
        claims.account_id.map_or(Self::Nothing, Self::Account)
    }

    /// Appends ` and <column> = <account>` when the caller is limited to one account.
    pub fn push(self, query: &mut QueryBuilder<'_, Postgres>, column: &str) {
        match self {
            Self::Tenant => {}
            Self::Account(id) => {
                query.push(format_args!(" and {column} = ")).push_bind(id);
            }
            Self::Nothing => {
                query.push(" and false");
            }
        }
    }

    /// The account a single-row lookup must match, `None` for the whole tenant; a Partner
    /// without an account matches the nil id, which no row has.
    pub fn account(self) -> Option<Uuid> {
        match self {
            Self::Tenant => None,
            Self::Account(id) => Some(id),
            Self::Nothing => Some(Uuid::nil()),
        }
    }
}
