pub mod auth;
pub mod commands;
pub mod users;
