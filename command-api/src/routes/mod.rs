pub mod api_keys;
pub mod auth;
pub mod commands;
pub mod openapi;
pub mod users;
pub mod webhooks;

/// The aggregate id in a command path: anything but a UUID names nothing there (404).
pub(crate) fn path_id(raw_id: &str) -> Result<uuid::Uuid, crate::ApiError> {
    raw_id
        .parse()
        .map_err(|_| crate::ApiError::NotFound(format!("`{raw_id}` is not a UUID")))
}
