//! The read side's HTTP API: GraphQL over the `read.*` tables.
//!
//! Every `POST /graphql` carries a bearer access token; its tenant scopes one read-only
//! transaction ([`TenantTx`]) in which all the request's SQL runs, with `app.tenant_id` set so
//! Postgres row-level security holds even if a resolver forgot its own tenant filter.
//! `X-Await-Version` gives read-your-writes (see [`await_version`]). The event history
//! (`eventHistory`, `auditLog`) is read from the `events` table in the same transaction, and
//! `asOf` replays a stream through its aggregate's `apply`.
//!
//! **Architecture invariant:** query-api never writes; of the aggregates it uses only their
//! fold (`apply`), never `decide`; it knows nothing of RabbitMQ or projectors beyond the
//! checkpoints table and the names the binary hands it.
#![forbid(unsafe_code)]

pub mod await_version;
mod cursor;
mod error;
mod http;
pub mod schema;
pub mod subscriptions;
mod tenant_tx;

use std::sync::Arc;
use std::time::Duration;

use actix_web::web;
use auth::Identity;
use sqlx::PgPool;

pub use error::QueryError;
pub use http::CORRELATION_HEADER;
pub use schema::{build_schema, execute, QuerySchema};
pub use tenant_tx::TenantTx;

/// Maps an aggregate type to the names of the read models (projections) its events feed.
pub type AwaitTargets = Arc<dyn Fn(&str) -> Vec<&'static str> + Send + Sync>;

/// Everything the routes need. Cheap to clone (pool handles and an `Arc`).
#[derive(Clone)]
pub struct QueryApi {
    pool: PgPool,
    /// Where the request's reads run: `pool`, or a streaming standby's.
    read_pool: PgPool,
    read_from: await_version::ReadFrom,
    identity: Identity,
    await_targets: AwaitTargets,
    await_timeout: Duration,
    await_signals: Option<Arc<await_version::ProjectedSignals>>,
    subscriptions: Arc<subscriptions::SubscriptionHub>,
}

impl QueryApi {
    /// How long a query waits for `X-Await-Version` by default: long enough to ride out a
    /// projector's normal lag, short enough that a client is not left hanging.
    pub const DEFAULT_AWAIT_TIMEOUT: Duration = Duration::from_secs(5);

    /// `pool` must log in as a member of `b2b_app` (the binary's `b2b_api`), not the owner or a
    /// superuser, or row-level security does not apply. `await_targets` is usually `projections::projections_fed_by`.
    pub fn new<F>(pool: PgPool, identity: Identity, await_targets: F) -> Self
    where
        F: Fn(&str) -> Vec<&'static str> + Send + Sync + 'static,
    {
        Self {
            read_pool: pool.clone(),
            read_from: await_version::ReadFrom::Primary,
            pool,
            identity,
            await_targets: Arc::new(await_targets),
            await_timeout: Self::DEFAULT_AWAIT_TIMEOUT,
            await_signals: None,
            subscriptions: subscriptions::SubscriptionHub::new(Default::default()),
        }
    }

    /// Subscriptions are fed and bounded by `hub` (which the process's invalidation listener
    /// must tell what it hears, and whose dispatcher must run; see [`subscriptions`]).
    pub fn with_subscriptions(mut self, hub: Arc<subscriptions::SubscriptionHub>) -> Self {
        self.subscriptions = hub;
        self
    }

    /// `X-Await-Version` waits for projectors' announcements instead of polling, and caps its
    /// waiters (see [`await_version`]).
    pub fn with_await_signals(mut self, signals: Arc<await_version::ProjectedSignals>) -> Self {
        self.await_signals = Some(signals);
        self
    }

    /// Runs the GraphQL reads (and `X-Await-Version`'s checkpoint checks) on `standby`, a
    /// streaming standby of the primary; admission stays on the primary. Read-your-writes
    /// holds: a waiter looks at the standby's checkpoints until its replay reaches the version.
    pub fn with_standby_reads(mut self, standby: PgPool) -> Self {
        self.read_pool = standby;
        self.read_from = await_version::ReadFrom::Standby;
        self
    }

    pub fn with_await_timeout(mut self, timeout: Duration) -> Self {
        self.await_timeout = timeout;
        self
    }
}

/// Registers `POST /graphql`, `GET /graphql` (GraphiQL) and `GET /graphql/ws` (subscriptions). The state is attached to the
/// resource, not the app, so it cannot clash with another API's data in the same `App`.
pub fn configure(cfg: &mut web::ServiceConfig, api: QueryApi) {
    let state = web::Data::new(http::State {
        api,
        schema: build_schema(),
    });
    cfg.service(
        web::resource("/graphql")
            .app_data(state.clone())
            .route(web::post().to(http::execute))
            .route(web::get().to(http::graphiql)),
    );
    cfg.service(
        web::resource("/graphql/ws")
            .app_data(state)
            .route(web::get().to(subscriptions::ws::upgrade)),
    );
}
