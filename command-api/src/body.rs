//! Reading a command body: bounded size, then JSON, then the command's own shape. Each stage
//! has its own error so a client can tell what to fix.
use actix_web::web;
use futures::StreamExt;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, FieldError};

pub async fn read_limited(
    mut payload: web::Payload,
    limit: usize,
) -> Result<web::BytesMut, ApiError> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::MalformedJson(e.to_string()))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Parses `{"type": "...", ...fields}` into a command enum.
pub fn parse_command<C: DeserializeOwned>(body: &[u8]) -> Result<C, ApiError> {
    let (command_type, fields) = parse_object(body)?;
    into_command(command_type, fields)
}

/// The command's type and its other fields, for callers that adjust fields first.
pub fn parse_object(body: &[u8]) -> Result<(String, Fields), ApiError> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| ApiError::MalformedJson(e.to_string()))?;
    let serde_json::Value::Object(mut fields) = value else {
        return Err(missing_type());
    };
    match fields.remove("type") {
        Some(serde_json::Value::String(command_type)) => Ok((command_type, fields)),
        _ => Err(missing_type()),
    }
}

/// The enum is externally tagged (`{"ChangeTier": {...}}`): serde loses field paths inside
/// internally tagged enums, and a client needs to know which field to fix.
pub fn into_command<C: DeserializeOwned>(
    command_type: String,
    fields: Fields,
) -> Result<C, ApiError> {
    let tagged = serde_json::json!({ command_type.clone(): fields });
    serde_path_to_error::deserialize(tagged).map_err(|error| {
        let path = error.path().to_string();
        let message = error.inner().to_string();
        if path == "." && message.starts_with("unknown variant") {
            return ApiError::UnknownCommand(command_type);
        }
        ApiError::InvalidInput(FieldError {
            field: field_name(&path, &message),
            message,
        })
    })
}

pub type Fields = serde_json::Map<String, serde_json::Value>;

fn missing_type() -> ApiError {
    ApiError::InvalidInput(FieldError {
        field: "type".into(),
        message: "a command object with a string `type` is required".into(),
    })
}

/// The path starts with the command's name; a missing or unknown field is reported at its
/// parent, so take its name from the message.
fn field_name(path: &str, message: &str) -> String {
    let inside_command = path.split_once('.').map_or("", |(_, rest)| rest);
    let quoted = message.split('`').nth(1);
    match quoted {
        Some(name)
            if message.starts_with("missing field") || message.starts_with("unknown field") =>
        {
            name.to_owned()
        }
        _ if inside_command.is_empty() => "body".to_owned(),
        _ => inside_command.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aggregates::account::AccountCommand;

    fn err(body: &str) -> ApiError {
        parse_command::<AccountCommand>(body.as_bytes()).unwrap_err()
    }

    #[test]
    fn each_kind_of_bad_body_has_its_own_error() {
        assert!(matches!(err("{not json"), ApiError::MalformedJson(_)));
        assert!(
            matches!(err(r#"{"type":"LaunchRocket"}"#), ApiError::UnknownCommand(t) if t == "LaunchRocket")
        );
        assert!(
            matches!(err(r#"{"tier":"Gold"}"#), ApiError::InvalidInput(f) if f.field == "type")
        );
        assert!(
            matches!(err(r#"{"type":"ChangeTier"}"#), ApiError::InvalidInput(f) if f.field == "tier")
        );
        assert!(
            matches!(err(r#"{"type":"ChangeTier","tier":"Platinum"}"#), ApiError::InvalidInput(f) if f.field == "tier")
        );
        assert!(
            matches!(err(r#"{"type":"ChangeTier","tier":"Gold","extra":1}"#), ApiError::InvalidInput(f) if f.field == "extra")
        );
        assert!(
            matches!(err(r#"{"type":"SetCreditLimit","amount":"lots"}"#), ApiError::InvalidInput(f) if f.field == "amount")
        );
    }
}
