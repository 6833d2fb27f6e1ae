//! The GraphQL schema. Resolvers read only through the request's [`TenantTx`] and filter by the
//! caller's tenant themselves as well; RLS is the second lock, not the only one.
mod accounts;
mod approvals;
mod contracts;
mod list;
mod me;
mod quotes;
mod scope;
mod stored;
mod users;

use async_graphql::{Context, EmptyMutation, EmptySubscription, ErrorExtensions, Object, Schema};
use auth::Claims;
use uuid::Uuid;

pub use accounts::{
    Account, AccountConnection, AccountEdge, AccountFilter, AccountOrder, AccountOrderField,
    AccountStatus, OrderDirection, PageInfo, Tier,
};
pub use approvals::{
    Approval, ApprovalConnection, ApprovalEdge, ApprovalFilter, ApprovalLevel, ApprovalOrder,
    ApprovalOrderField, ApprovalStatus, SubjectType,
};
pub use contracts::{
    Contract, ContractConnection, ContractEdge, ContractFilter, ContractOrder, ContractOrderField,
    ContractStatus, ContractVersion,
};
pub use me::{Me, Role};
pub use quotes::{
    Quote, QuoteConnection, QuoteEdge, QuoteFilter, QuoteLine, QuoteOrder, QuoteOrderField,
    QuoteStatus,
};
pub use users::{User, UserConnection, UserEdge, UserFilter, UserOrder, UserOrderField};

use scope::AccountScope;

use crate::TenantTx;

/// Our own types nest at most 4 deep (connection → edges → node → field) and have no cycles, so
/// only introspection (`ofType`, `fields { type { fields …`) can go deeper. GraphiQL's own
/// introspection query is 13 deep; 15 admits it with a little room and still stops the chains.
pub const MAX_DEPTH: usize = 15;
/// Every selected field costs 1; lists are bounded by the `first` cap instead, so this mainly
/// stops one request from aliasing the same expensive list many times.
pub const MAX_COMPLEXITY: usize = 500;

pub type QuerySchema = Schema<QueryRoot, EmptyMutation, EmptySubscription>;

pub fn build_schema() -> QuerySchema {
    Schema::build(QueryRoot, EmptyMutation, EmptySubscription)
        .limit_depth(MAX_DEPTH)
        .limit_complexity(MAX_COMPLEXITY)
        .finish()
}

pub struct QueryRoot;

#[Object]
impl QueryRoot {
    /// The signed-in user, as the access token describes them.
    async fn me(&self, ctx: &Context<'_>) -> async_graphql::Result<Me> {
        Ok(Me::from(caller(ctx)?))
    }

    /// The caller's tenant's accounts, a page at a time.
    async fn accounts(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size: 1 to 100 (larger is capped), 20 if omitted.")] first: Option<
            i32,
        >,
        #[graphql(desc = "The `endCursor` of the previous page.")] after: Option<String>,
        filter: Option<AccountFilter>,
        order_by: Option<AccountOrder>,
    ) -> async_graphql::Result<AccountConnection> {
        let request =
            accounts::PageRequest::new(first, after, filter, order_by).map_err(|e| e.extend())?;
        accounts::page(tx(ctx)?, caller(ctx)?.tid, request)
            .await
            .map_err(|e| e.extend())
    }

    /// One account of the caller's tenant; null when there is none with that id.
    async fn account(&self, ctx: &Context<'_>, id: Uuid) -> async_graphql::Result<Option<Account>> {
        accounts::by_id(tx(ctx)?, caller(ctx)?.tid, id)
            .await
            .map_err(|e| e.extend())
    }

    /// The tenant's users (a Partner sees the users of their own account only).
    async fn users(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size: 1 to 100 (larger is capped), 20 if omitted.")] first: Option<
            i32,
        >,
        #[graphql(desc = "The `endCursor` of the previous page.")] after: Option<String>,
        filter: Option<UserFilter>,
        order_by: Option<UserOrder>,
    ) -> async_graphql::Result<UserConnection> {
        let claims = caller(ctx)?;
        let scope = AccountScope::of(claims);
        users::page(
            tx(ctx)?,
            claims.tid,
            scope,
            (first, after),
            filter,
            order_by,
        )
        .await
        .map_err(|e| e.extend())
    }

    /// The tenant's quotes (a Partner sees their own account's only), a page at a time.
    async fn quotes(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size: 1 to 100 (larger is capped), 20 if omitted.")] first: Option<
            i32,
        >,
        #[graphql(desc = "The `endCursor` of the previous page.")] after: Option<String>,
        filter: Option<QuoteFilter>,
        order_by: Option<QuoteOrder>,
    ) -> async_graphql::Result<QuoteConnection> {
        let claims = caller(ctx)?;
        let scope = AccountScope::of(claims);
        quotes::page(
            tx(ctx)?,
            claims.tid,
            scope,
            (first, after),
            filter,
            order_by,
        )
        .await
        .map_err(|e| e.extend())
    }

    /// One quote with its lines and totals; null when the caller may see none with that id.
    async fn quote(&self, ctx: &Context<'_>, id: Uuid) -> async_graphql::Result<Option<Quote>> {
        let claims = caller(ctx)?;
        quotes::by_id(tx(ctx)?, claims.tid, AccountScope::of(claims), id)
            .await
            .map_err(|e| e.extend())
    }

    /// Approval requests; `filter: { pendingForMe: true }` is the caller's to-do list.
    async fn approvals(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size: 1 to 100 (larger is capped), 20 if omitted.")] first: Option<
            i32,
        >,
        #[graphql(desc = "The `endCursor` of the previous page.")] after: Option<String>,
        filter: Option<ApprovalFilter>,
        order_by: Option<ApprovalOrder>,
    ) -> async_graphql::Result<ApprovalConnection> {
        approvals::page(tx(ctx)?, caller(ctx)?, (first, after), filter, order_by)
            .await
            .map_err(|e| e.extend())
    }

    /// One approval request with its levels; null when the caller may see none with that id.
    async fn approval(
        &self,
        ctx: &Context<'_>,
        id: Uuid,
    ) -> async_graphql::Result<Option<Approval>> {
        approvals::by_id(tx(ctx)?, caller(ctx)?, id)
            .await
            .map_err(|e| e.extend())
    }

    /// The tenant's contracts (a Partner sees their own account's only), a page at a time.
    async fn contracts(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size: 1 to 100 (larger is capped), 20 if omitted.")] first: Option<
            i32,
        >,
        #[graphql(desc = "The `endCursor` of the previous page.")] after: Option<String>,
        filter: Option<ContractFilter>,
        order_by: Option<ContractOrder>,
    ) -> async_graphql::Result<ContractConnection> {
        let claims = caller(ctx)?;
        let scope = AccountScope::of(claims);
        contracts::page(
            tx(ctx)?,
            claims.tid,
            scope,
            (first, after),
            filter,
            order_by,
        )
        .await
        .map_err(|e| e.extend())
    }

    /// One contract with its versions; null when the caller may see none with that id.
    async fn contract(
        &self,
        ctx: &Context<'_>,
        id: Uuid,
    ) -> async_graphql::Result<Option<Contract>> {
        let claims = caller(ctx)?;
        contracts::by_id(tx(ctx)?, claims.tid, AccountScope::of(claims), id)
            .await
            .map_err(|e| e.extend())
    }
}

/// The verified token of the caller; the HTTP handler puts it in every request's data.
fn caller<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a Claims> {
    ctx.data::<Claims>()
}

fn tx<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a TenantTx> {
    ctx.data::<TenantTx>()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// graphql-js 16's `getIntrospectionQuery()`, which GraphiQL sends for its docs and
    /// autocompletion; the limits must leave room for it.
    const GRAPHIQL_INTROSPECTION: &str = r#"
    query IntrospectionQuery {
      __schema {
        queryType { name }
        mutationType { name }
        subscriptionType { name }
        types { ...FullType }
        directives { name description locations args(includeDeprecated: true) { ...InputValue } }
      }
    }
    fragment FullType on __Type {
      kind name description
      fields(includeDeprecated: true) {
        name description
        args(includeDeprecated: true) { ...InputValue }
        type { ...TypeRef }
        isDeprecated deprecationReason
      }
      inputFields(includeDeprecated: true) { ...InputValue }
      interfaces { ...TypeRef }
      enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
      possibleTypes { ...TypeRef }
    }
    fragment InputValue on __InputValue {
      name description type { ...TypeRef } defaultValue isDeprecated deprecationReason
    }
    fragment TypeRef on __Type {
      kind name
      ofType { kind name ofType { kind name ofType { kind name ofType { kind name
        ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } } }
    }"#;

    #[tokio::test]
    async fn the_limits_admit_graphiqls_introspection_query() {
        let response = build_schema().execute(GRAPHIQL_INTROSPECTION).await;
        assert!(response.errors.is_empty(), "{:?}", response.errors);
    }
}
