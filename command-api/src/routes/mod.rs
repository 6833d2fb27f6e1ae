pub mod api_keys;
pub mod auth;
pub mod commands;
pub mod openapi;
pub mod users;
pub mod webhooks;
