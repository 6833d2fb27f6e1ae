//! The GraphQL schema. Resolvers read only through the request's [`TenantTx`] and filter by the
//! caller's tenant themselves as well; RLS is the second lock, not the only one (and the only
//! one for the event history: `events` has no RLS).
mod accounts;
mod alias_limit;
mod api_keys;
mod approvals;
mod as_of;
mod contracts;
mod history;
mod list;
mod loaders;
mod me;
mod quotes;
mod scope;
mod stored;
pub(crate) mod subscription;
mod users;
mod webhooks;

use async_graphql::{Context, EmptyMutation, ErrorExtensions, Object, Schema};
use auth::Claims;
use chrono::{DateTime, Utc};
use uuid::Uuid;

pub use accounts::{
    Account, AccountConnection, AccountEdge, AccountFilter, AccountOrder, AccountOrderField,
    AccountStatus, Tier,
};
pub use api_keys::ApiKey;
pub use approvals::{
    Approval, ApprovalConnection, ApprovalEdge, ApprovalFilter, ApprovalLevel, ApprovalOrder,
    ApprovalOrderField, ApprovalStatus, SubjectType,
};
pub use as_of::AggregateState;
pub use contracts::{
    Contract, ContractConnection, ContractEdge, ContractFilter, ContractOrder, ContractOrderField,
    ContractStatus, ContractVersion,
};
pub use history::{AggregateType, EventConnection, EventEdge, HistoryEvent};
pub use list::{OrderDirection, PageInfo};
pub use me::{Me, Role};
pub use quotes::{
    Quote, QuoteConnection, QuoteEdge, QuoteFilter, QuoteLine, QuoteOrder, QuoteOrderField,
    QuoteStatus,
};
pub use subscription::{Change, ChangeKind, SubscriptionRoot};
pub use users::{User, UserConnection, UserEdge, UserFilter, UserOrder, UserOrderField};
pub use webhooks::{WebhookAttempt, WebhookDelivery, WebhookDeliveryStatus, WebhookEndpoint};

use loaders::prefetch;
use scope::AccountScope;

use crate::{QueryError, TenantTx};

/// Our own types nest at most 4 deep (connection → edges → node → field) and have no cycles, so
/// only introspection (`ofType`, `fields { type { fields …`) can go deeper. GraphiQL's own
/// introspection query is 13 deep; 15 admits it with a little room and still stops the chains.
pub const MAX_DEPTH: usize = 15;
/// Every selected field costs 1; lists are bounded by the `first` cap instead, so this mainly
/// stops one request from aliasing the same expensive list many times.
pub const MAX_COMPLEXITY: usize = 500;
/// Aliases per document: enough to read a few dozen records by id in one request.
pub const MAX_ALIASES: usize = 50;

pub type QuerySchema = Schema<QueryRoot, EmptyMutation, SubscriptionRoot>;

pub fn build_schema() -> QuerySchema {
    Schema::build(QueryRoot, EmptyMutation, SubscriptionRoot)
        .limit_depth(MAX_DEPTH)
        .limit_complexity(MAX_COMPLEXITY)
        .extension(alias_limit::AliasLimit(MAX_ALIASES))
        .finish()
}

/// Runs one request as `claims` inside `tx`. Everything resolvers take from the context (the
/// caller, the transaction, the batch loaders) is attached here, so the HTTP route and tests
/// execute requests exactly alike.
pub async fn execute(
    schema: &QuerySchema,
    request: async_graphql::Request,
    claims: Claims,
    tx: &TenantTx,
) -> async_graphql::Response {
    let request = loaders::attach(request, tx, claims.tid)
        .data(claims)
        .data(tx.clone());
    schema.execute(request).await
}

pub struct QueryRoot;

#[Object]
impl QueryRoot {
    /// The signed-in user, as the access token describes them.
    async fn me(&self, ctx: &Context<'_>) -> async_graphql::Result<Me> {
        Ok(Me::from(caller(ctx)?))
    }

    /// The caller's tenant's accounts (a Partner sees their own account only), a page at a time.
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
        let claims = caller(ctx)?;
        let scope = AccountScope::of(claims);
        accounts::page(
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

    /// One account of the caller's tenant; null when the caller may see none with that id.
    async fn account(&self, ctx: &Context<'_>, id: Uuid) -> async_graphql::Result<Option<Account>> {
        let claims = caller(ctx)?;
        accounts::by_id(tx(ctx)?, claims.tid, AccountScope::of(claims), id)
            .await
            .map_err(|e| e.extend())
    }

    /// The tenant's API keys, newest first (at most 500), with their last use. TenantAdmins
    /// only; a key itself may not list keys.
    async fn api_keys(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Also list revoked keys.", default = false)] include_revoked: bool,
    ) -> async_graphql::Result<Vec<ApiKey>> {
        let claims = caller(ctx)?;
        if claims.api_key || !claims.roles.contains(&aggregates::Role::TenantAdmin) {
            return Err(QueryError::Forbidden(
                "only a signed-in TenantAdmin lists API keys".into(),
            )
            .extend());
        }
        api_keys::list(tx(ctx)?, claims.tid, include_revoked)
            .await
            .map_err(|e| e.extend())
    }

    /// The tenant's webhook endpoints, newest first (at most 500); never their secrets.
    /// TenantAdmins only.
    async fn webhook_endpoints(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<WebhookEndpoint>> {
        let claims = tenant_admin(ctx, "lists webhook endpoints")?;
        webhooks::endpoints(tx(ctx)?, claims.tid)
            .await
            .map_err(|e| e.extend())
    }

    /// One endpoint's delivery log, newest first: each delivery's status, attempts (with
    /// status code, latency and error), and next attempt. TenantAdmins only.
    async fn webhook_deliveries(
        &self,
        ctx: &Context<'_>,
        endpoint_id: Uuid,
        #[graphql(desc = "Only deliveries in this status.")] status: Option<WebhookDeliveryStatus>,
        #[graphql(desc = "How many: 1 to 200, 50 if omitted.")] first: Option<i32>,
    ) -> async_graphql::Result<Vec<WebhookDelivery>> {
        let claims = tenant_admin(ctx, "reads webhook deliveries")?;
        webhooks::deliveries(tx(ctx)?, claims.tid, endpoint_id, status, first)
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
        let page = quotes::page(
            tx(ctx)?,
            claims.tid,
            scope,
            (first, after),
            filter,
            order_by,
        )
        .await
        .map_err(|e| e.extend())?;
        prefetch::<QuoteLine>(ctx, "lines", page.nodes().map(|q| q.id)).await?;
        Ok(page)
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
        let page = approvals::page(tx(ctx)?, caller(ctx)?, (first, after), filter, order_by)
            .await
            .map_err(|e| e.extend())?;
        prefetch::<ApprovalLevel>(ctx, "levels", page.nodes().map(|a| a.id)).await?;
        Ok(page)
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
        let page = contracts::page(
            tx(ctx)?,
            claims.tid,
            scope,
            (first, after),
            filter,
            order_by,
        )
        .await
        .map_err(|e| e.extend())?;
        prefetch::<ContractVersion>(ctx, "versions", page.nodes().map(|c| c.id)).await?;
        Ok(page)
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

    /// One stream's events in sequence order. Empty for an id of another tenant, and for a
    /// Partner, for any stream outside their own account's.
    async fn event_history(
        &self,
        ctx: &Context<'_>,
        aggregate_type: AggregateType,
        aggregate_id: Uuid,
        #[graphql(desc = "Page size: 1 to 100 (larger is capped), 20 if omitted.")] first: Option<
            i32,
        >,
        #[graphql(desc = "The `endCursor` of the previous page.")] after: Option<String>,
    ) -> async_graphql::Result<EventConnection> {
        let claims = caller(ctx)?;
        let selection = history::Selection::Stream {
            aggregate_type,
            aggregate_id,
            scope: AccountScope::of(claims),
        };
        history::page(tx(ctx)?, claims.tid, selection, (first, after))
            .await
            .map_err(|e| e.extend())
    }

    /// The tenant's events in commit order, from `from` (inclusive) to `to` (exclusive).
    /// Events of transactions still running elsewhere appear once those commit, so paging
    /// never skips one. Refused (`FORBIDDEN`) to Partners: it is the tenant's own trail.
    // Each argument is part of the public GraphQL signature; bundling them would change it.
    #[allow(clippy::too_many_arguments)]
    async fn audit_log(
        &self,
        ctx: &Context<'_>,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        user_id: Option<Uuid>,
        aggregate_type: Option<AggregateType>,
        #[graphql(desc = "Page size: 1 to 100 (larger is capped), 20 if omitted.")] first: Option<
            i32,
        >,
        #[graphql(desc = "The `endCursor` of the previous page.")] after: Option<String>,
    ) -> async_graphql::Result<EventConnection> {
        let claims = caller(ctx)?;
        if AccountScope::of(claims) != AccountScope::Tenant {
            let refusal = QueryError::Forbidden("Partner users may not read the audit log".into());
            return Err(refusal.extend());
        }
        let filter = history::AuditFilter {
            from,
            to,
            user_id,
            aggregate_type,
        };
        let selection = history::Selection::Audit(filter);
        history::page(tx(ctx)?, claims.tid, selection, (first, after))
            .await
            .map_err(|e| e.extend())
    }

    /// The aggregate's state at `at`, rebuilt by replaying its events recorded by then; null
    /// when it had none (or the caller may not read the stream).
    async fn as_of(
        &self,
        ctx: &Context<'_>,
        aggregate_type: AggregateType,
        aggregate_id: Uuid,
        at: DateTime<Utc>,
    ) -> async_graphql::Result<Option<AggregateState>> {
        let claims = caller(ctx)?;
        let target = as_of::Target {
            aggregate_type,
            aggregate_id,
            at,
        };
        as_of::state(tx(ctx)?, claims.tid, AccountScope::of(claims), target)
            .await
            .map_err(|e| e.extend())
    }
}

/// The verified token of the caller; the HTTP handler puts it in every request's data.
fn caller<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a Claims> {
    ctx.data::<Claims>()
}

/// The caller, when they are a TenantAdmin.
fn tenant_admin<'a>(ctx: &Context<'a>, what: &str) -> async_graphql::Result<&'a Claims> {
    let claims = caller(ctx)?;
    if !claims.roles.contains(&aggregates::Role::TenantAdmin) {
        return Err(QueryError::Forbidden(format!("only a TenantAdmin {what}")).extend());
    }
    Ok(claims)
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
