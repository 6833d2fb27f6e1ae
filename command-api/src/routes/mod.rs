pub mod auth;
pub mod commands;
