//! The command side over HTTP: sign-in, and `POST /api/v1/{collection}/{id}` running commands
//! against aggregates. Rules live in the aggregates; this crate only translates HTTP to commands
//! and errors to `application/problem+json`. `GET /api/v1/openapi.json` describes all of it,
//! generated from the same types.
#![forbid(unsafe_code)]

mod body;
mod error;
mod idempotency;
mod openapi;
mod request;
mod routes;
pub mod tenants;

use std::net::IpAddr;
use std::sync::Arc;

use actix_web::web;
use auth::Identity;
use event_store::clock::SystemClock;
use event_store::{Clock, CommandBus, Invalidations};
use sqlx::PgPool;

pub use error::{problem_for_status, ApiError};
pub use request::Caller;

/// Largest command body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Everything the command routes need, shared by all workers.
#[derive(Clone)]
pub struct CommandApi {
    pool: PgPool,
    identity: Identity,
    bus: Arc<CommandBus>,
    /// Honour `X-Test-Fault` crash points (tests only).
    test_faults: bool,
    /// The process's cache invalidation listener, when it runs one.
    invalidations: Option<Arc<Invalidations>>,
    /// When commands are decided: the process's one clock (movable in tests).
    clock: Arc<dyn Clock>,
    /// Load balancers whose `X-Forwarded-For` names the client (sign-in lockout, throttle).
    trusted_proxies: Vec<IpAddr>,
    /// Webhook endpoint commands.
    webhooks: webhooks::Endpoints,
}

impl CommandApi {
    pub fn new(pool: PgPool, identity: Identity, bus: Arc<CommandBus>) -> Self {
        Self {
            pool: pool.clone(),
            identity,
            bus,
            test_faults: false,
            invalidations: None,
            clock: Arc::new(SystemClock),
            trusted_proxies: Vec::new(),
            webhooks: webhooks::Endpoints::new(pool, webhooks::Reach::PublicOnly),
        }
    }

    /// Which addresses webhook endpoints may point at (`APP_ENV` decides; production reaches
    /// public addresses only).
    pub fn with_webhook_reach(self, reach: webhooks::Reach) -> Self {
        Self {
            webhooks: webhooks::Endpoints::new(self.pool.clone(), reach),
            ..self
        }
    }

    /// Believes `X-Forwarded-For` from these peers only.
    pub fn with_trusted_proxies(self, trusted_proxies: Vec<IpAddr>) -> Self {
        Self {
            trusted_proxies,
            ..self
        }
    }

    /// Decides commands at `clock`'s time: the clock the process managers and timers use.
    pub fn with_clock(self, clock: Arc<dyn Clock>) -> Self {
        Self { clock, ..self }
    }

    /// Writes that change who may do what (sign-out, user commands) answer only once every
    /// process's caches have heard of them.
    pub fn with_invalidations(self, invalidations: Arc<Invalidations>) -> Self {
        Self {
            invalidations: Some(invalidations),
            ..self
        }
    }

    /// Waits until every listening process has handled this write's cache invalidations (see
    /// `event_store::invalidation`).
    async fn settle_caches(&self) {
        if let Some(invalidations) = &self.invalidations {
            invalidations.barrier().await;
        }
    }

    /// Lets requests name a crash point (`X-Test-Fault`); for fault tests only.
    pub fn with_test_faults(self, enabled: bool) -> Self {
        Self {
            test_faults: enabled,
            ..self
        }
    }
}

/// Registers the command and sign-in routes.
pub fn configure(cfg: &mut web::ServiceConfig, api: CommandApi) {
    cfg.app_data(web::Data::new(api.identity.clone()))
        .app_data(web::Data::new(api))
        .service(
            // Resources, not scope routes: a method a path does not serve is then a 405 with
            // `Allow`, not a 404.
            web::scope("/api/v1")
                .service(web::resource("/auth/login").post(routes::auth::login))
                .service(web::resource("/auth/login/totp").post(routes::auth::login_totp))
                .service(web::resource("/auth/totp/enroll").post(routes::auth::totp_enroll))
                .service(web::resource("/auth/totp/confirm").post(routes::auth::totp_confirm))
                .service(web::resource("/auth/refresh").post(routes::auth::refresh))
                .service(web::resource("/auth/logout").post(routes::auth::logout))
                .service(web::resource("/auth/me").get(routes::auth::me))
                .service(web::resource("/openapi.json").get(routes::openapi::document))
                // Before the command collections: a key is no aggregate.
                .service(web::resource("/api-keys/{id}").post(routes::api_keys::execute))
                .service(web::resource("/webhooks/{id}").post(routes::webhooks::execute))
                .service(web::resource("/{collection}/{id}").post(routes::commands::execute)),
        );
}
