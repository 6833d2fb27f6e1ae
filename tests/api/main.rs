//! Black-box tests: they drive the real `b2b` binary over HTTP against the real Postgres and
//! RabbitMQ of the local stack (`deploy/local/stack.sh up`), one fresh database and one fresh
//! set of RabbitMQ names per test.
mod accounts;
mod api_keys;
mod audit;
mod audit_export;
mod audit_signing;
mod bad_input;
mod cached_sessions;
mod database_roles;
mod domain_commands;
mod event_store;
mod exactly_once;
mod forgetting;
mod hardening;
mod helpers;
mod idempotency;
mod isolation;
mod limits;
mod matrix;
mod metrics;
mod observability;
mod openapi;
mod projections_cli;
mod read_your_writes;
mod scenario;
mod sessions;
mod subscriptions;
mod supervision;
mod tenant_policy;
mod totp;
mod trace_context;
mod upcasting;
mod webhooks;
