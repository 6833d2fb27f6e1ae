//! `users` over `read.users`.
use async_graphql::{ComplexObject, Context, Enum, ErrorExtensions, InputObject, SimpleObject};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;

use super::list::{self, connection, Key, Listing, PageRequest};
use super::scope::AccountScope;
use super::stored::role;
use super::{OrderDirection, Role};
use crate::{QueryError, TenantTx};

/// A user of the tenant. Nothing about passwords is ever stored in the read model.
#[derive(Debug, Clone, SimpleObject, sqlx::FromRow)]
#[graphql(complex)]
pub struct User {
    pub id: Uuid,
    /// Lower-case; `[erased]` once the user is forgotten (`ForgetUser`).
    pub email: String,
    /// `[erased]` once the user is forgotten (`ForgetUser`).
    pub display_name: String,
    #[graphql(skip)]
    #[sqlx(rename = "roles")]
    pub role_names: Vec<String>,
    /// The account a Partner user acts for.
    pub account_id: Option<Uuid>,
    /// The most this user may approve, in `approvalLimitCurrency`.
    pub approval_limit: Option<Decimal>,
    pub approval_limit_currency: Option<String>,
    /// Inactive users cannot sign in.
    pub active: bool,
    pub deactivation_reason: Option<String>,
    /// The last event of the user's stream this row reflects.
    pub version: i64,
    pub registered_at: DateTime<Utc>,
    pub registered_by: Option<Uuid>,
    pub updated_at: DateTime<Utc>,
    pub updated_by: Option<Uuid>,
    #[graphql(skip)]
    pub sign_in_locked_until: Option<DateTime<Utc>>,
}

#[ComplexObject]
impl User {
    /// Until when some address is locked out of signing in as this user after repeated failures
    /// (the latest such lock); null when none is. TenantAdmins only.
    async fn sign_in_locked_until(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<DateTime<Utc>>> {
        if !super::caller(ctx)?
            .roles
            .contains(&aggregates::Role::TenantAdmin)
        {
            return Err(
                QueryError::Forbidden("only a TenantAdmin sees sign-in locks".into()).extend(),
            );
        }
        Ok(self.sign_in_locked_until)
    }

    async fn roles(&self) -> async_graphql::Result<Vec<Role>> {
        self.role_names
            .iter()
            .map(|name| role(name, "read.users.roles"))
            .collect::<Result<_, _>>()
            .map_err(|e| e.extend())
    }
}

#[derive(Debug, Clone, Default, InputObject)]
pub struct UserFilter {
    /// Users holding this role.
    pub role: Option<Role>,
    pub active: Option<bool>,
    pub account_id: Option<Uuid>,
    /// Case-insensitive substring of the email or display name.
    pub search: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Enum)]
pub enum UserOrderField {
    #[default]
    Email,
    RegisteredAt,
}

/// Sorted by `field` in `direction`, ties broken by id.
#[derive(Debug, Clone, Copy, Default, InputObject)]
pub struct UserOrder {
    #[graphql(default)]
    pub field: UserOrderField,
    #[graphql(default)]
    pub direction: OrderDirection,
}

impl UserOrderField {
    fn column(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::RegisteredAt => "registered_at",
        }
    }

    fn key(self, user: &User) -> (Key, Uuid) {
        let key = match self {
            Self::Email => Key::Text(user.email.clone()),
            Self::RegisteredAt => Key::Time(user.registered_at),
        };
        (key, user.id)
    }
}

pub struct UserListing {
    filter: UserFilter,
    scope: AccountScope,
}

impl Listing for UserListing {
    type Node = User;
    const FROM: &'static str = "read.users";
    // The lock lives with sign-in, not in the read model: it is not an event.
    const COLUMNS: &'static str = "id, email, display_name, roles, account_id, approval_limit, \
        approval_limit_currency, active, deactivation_reason, version, registered_at, \
        registered_by, updated_at, updated_by, \
        (select max(f.locked_until) from sign_in_failures f \
          where f.tenant_id = read.users.tenant_id and f.email = read.users.email \
            and f.locked_until > now()) as sign_in_locked_until";

    fn push_filter<'a>(&'a self, query: &mut QueryBuilder<'a, Postgres>, tenant_id: Uuid) {
        query.push(" where tenant_id = ").push_bind(tenant_id);
        self.scope.push(query, "account_id");
        if let Some(wanted) = self.filter.role {
            query
                .push(" and ")
                .push_bind(<&str>::from(wanted))
                .push(" = any(roles)");
        }
        if let Some(active) = self.filter.active {
            query.push(" and active = ").push_bind(active);
        }
        if let Some(account_id) = self.filter.account_id {
            query.push(" and account_id = ").push_bind(account_id);
        }
        if let Some(part) = &self.filter.search {
            // strpos, not ilike: the client's text is matched literally, `%` and `_` included.
            query
                .push(" and (strpos(lower(email), lower(")
                .push_bind(part.as_str())
                .push(")) > 0 or strpos(lower(display_name), lower(")
                .push_bind(part.as_str())
                .push(")) > 0)");
        }
    }
}

connection!(UserConnection, UserEdge, User, UserListing);

pub async fn page(
    tx: &TenantTx,
    tenant_id: Uuid,
    scope: AccountScope,
    paging: (Option<i32>, Option<String>),
    filter: Option<UserFilter>,
    order: Option<UserOrder>,
) -> Result<UserConnection, QueryError> {
    let order = order.unwrap_or_default();
    let request = PageRequest::new(paging.0, paging.1, order.field.column(), order.direction)?;
    let filter = filter.unwrap_or_default();
    list::text_filter("search", filter.search.as_ref())?;
    let listing = UserListing { filter, scope };
    let page = list::page(tx, tenant_id, &listing, &request, |u| order.field.key(u)).await?;
    Ok(UserConnection::new(page, tenant_id, listing))
}
