//! User commands carry two things the aggregate must not see: the user's own id on
//! registration (the path's id) and a password, which is hashed into the credentials table and
//! never enters an event.
use serde_json::Value;
use uuid::Uuid;

use crate::body::Fields;
use crate::error::FieldError;
use crate::ApiError;

/// Takes the password out of a user command's fields and puts the path's id into a
/// registration's, so what is left is the aggregate's command.
pub fn take_extras(
    command_type: &str,
    fields: &mut Fields,
    user_id: Uuid,
) -> Result<Option<String>, ApiError> {
    let password = match fields.remove("password") {
        None if command_type == "ChangePassword" => return Err(invalid("password", "is required")),
        None => None,
        Some(Value::String(p)) if matches!(command_type, "RegisterUser" | "ChangePassword") => {
            Some(checked_password(p)?)
        }
        Some(_) => {
            return Err(invalid(
                "password",
                "must be a string on RegisterUser or ChangePassword",
            ))
        }
    };
    if command_type == "RegisterUser" {
        match fields.get("user_id") {
            None => {
                fields.insert("user_id".into(), Value::String(user_id.to_string()));
            }
            Some(Value::String(given)) if given.parse() == Ok(user_id) => {}
            Some(_) => return Err(invalid("user_id", "must be the id in the path")),
        }
    }
    Ok(password)
}

fn checked_password(password: String) -> Result<String, ApiError> {
    auth::check_password(&password)?;
    Ok(password)
}

fn invalid(field: &str, message: &str) -> ApiError {
    ApiError::InvalidInput(FieldError {
        field: field.into(),
        message: message.into(),
    })
}
