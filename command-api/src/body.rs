//! Reading a request body: `application/json`, bounded in size and in time, then JSON with
//! unique keys, then the command's own shape. Each stage has its own error so a client can
//! tell what to fix.
use std::collections::HashSet;
use std::fmt;
use std::time::Duration;

use actix_web::error::PayloadError;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};
use futures::future::LocalBoxFuture;
use futures::{Stream, StreamExt};
use serde::de::{self, DeserializeOwned, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::error::{ApiError, FieldError};
use crate::MAX_BODY_BYTES;

/// A client that sends its body slower than this is cut off (408): a connection must not be
/// held open by a body that trickles in.
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The body of a JSON request: the media type checked, read within the size and time limits.
pub async fn read_json_body(
    req: &HttpRequest,
    payload: impl Stream<Item = Result<web::Bytes, PayloadError>> + Unpin,
) -> Result<web::BytesMut, ApiError> {
    require_json(req)?;
    tokio::time::timeout(BODY_READ_TIMEOUT, read_limited(payload, MAX_BODY_BYTES))
        .await
        .map_err(|_| ApiError::BodyTimeout(BODY_READ_TIMEOUT.as_secs()))?
}

/// `application/json`, with or without parameters (`; charset=utf-8`).
fn require_json(req: &HttpRequest) -> Result<(), ApiError> {
    let media_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    match media_type.as_deref() {
        Some("application/json") => Ok(()),
        other => Err(ApiError::UnsupportedMediaType(
            other.unwrap_or("none").to_owned(),
        )),
    }
}

async fn read_limited(
    mut payload: impl Stream<Item = Result<web::Bytes, PayloadError>> + Unpin,
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

/// A JSON object read by [`read_json_body`] into `T` (the sign-in routes). Only an object:
/// serde would also fill a struct from an array of its fields in order (`[null]`).
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for JsonBody<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        let req = req.clone();
        let payload = payload.take();
        Box::pin(async move {
            let body = read_json_body(&req, payload).await?;
            reject_duplicate_keys(&body)?;
            if body.iter().find(|byte| !byte.is_ascii_whitespace()) != Some(&b'{') {
                return Err(ApiError::MalformedJson(
                    "the body must be a JSON object".into(),
                ));
            }
            serde_json::from_slice(&body)
                .map(JsonBody)
                .map_err(|e| ApiError::MalformedJson(e.to_string()))
        })
    }
}

/// Splits `{"type": "...", ...fields}` into the command's type and its other fields, which
/// [`into_command`] turns into a command enum (user commands adjust the fields first).
pub fn parse_object(body: &[u8]) -> Result<(String, Fields), ApiError> {
    reject_duplicate_keys(body)?;
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

/// `{"amount": "1", "amount": "999"}` means one thing to one parser and another to the next;
/// such a body is refused rather than guessed at, at any depth.
fn reject_duplicate_keys(body: &[u8]) -> Result<(), ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    UniqueKeys::deserialize(&mut deserializer)
        .map(drop)
        .map_err(|e| ApiError::MalformedJson(e.to_string()))
}

/// Walks any JSON value, failing on an object that repeats a key.
struct UniqueKeys;

impl UniqueKeys {
    fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(UniqueKeys)
    }
}

impl<'de> de::Deserialize<'de> for UniqueKeys {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(UniqueKeys)
    }
}

impl<'de> Visitor<'de> for UniqueKeys {
    type Value = UniqueKeys;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_unit<E>(self) -> Result<Self, E> {
        Ok(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self, A::Error> {
        while seq.next_element::<UniqueKeys>()?.is_some() {}
        Ok(self)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self, A::Error> {
        let mut keys = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !keys.insert(key.clone()) {
                return Err(de::Error::custom(format!("the key `{key}` appears twice")));
            }
            map.next_value::<UniqueKeys>()?;
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aggregates::account::AccountCommand;

    fn err(body: &str) -> ApiError {
        parse_object(body.as_bytes())
            .and_then(|(command_type, fields)| into_command::<AccountCommand>(command_type, fields))
            .unwrap_err()
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
