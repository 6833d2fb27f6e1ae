//! User commands carry two things the aggregate must not see: the user's own id on
//! registration (the path's id) and a password, which is hashed into the credentials table and
//! never enters an event.
use aggregates::user::UserCommand;
use serde_json::Value;
use uuid::Uuid;

use crate::body::{into_command, parse_object};
use crate::error::FieldError;
use crate::ApiError;

pub struct UserRequest {
    pub command: UserCommand,
    pub password: Option<String>,
}

pub fn parse(body: &[u8], user_id: Uuid) -> Result<UserRequest, ApiError> {
    let (command_type, mut fields) = parse_object(body)?;
    let password = match fields.remove("password") {
        None if command_type == "ChangePassword" => return Err(invalid("password", "is required")),
        None => None,
        Some(Value::String(p))
            if matches!(command_type.as_str(), "RegisterUser" | "ChangePassword") =>
        {
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
    let command = into_command(command_type, fields)?;
    Ok(UserRequest { command, password })
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
