//! Opaque Relay cursors: a position (whatever the list sorts by, plus the row id) as JSON in
//! URL-safe base64. Clients must not build or read them, which leaves us free to change the
//! inside; decoding therefore fails closed with one message for every kind of garbage.
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::QueryError;

pub fn encode<T: Serialize>(position: &T) -> String {
    let json = serde_json::to_vec(position)
        .expect("cursor positions are plain structs that always serialize");
    URL_SAFE_NO_PAD.encode(json)
}

pub fn decode<T: DeserializeOwned>(cursor: &str) -> Result<T, QueryError> {
    let invalid = || QueryError::BadUserInput("`after` is not a cursor this API issued".into());
    let json = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    // No position we issue holds a NUL, and Postgres text cannot: a forged one stops here.
    if json.windows(6).any(|w| w == br"\u0000") {
        return Err(invalid());
    }
    serde_json::from_slice(&json).map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use uuid::Uuid;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Position {
        key: String,
        id: Uuid,
    }

    fn position() -> Position {
        Position {
            key: "Ünïcode & spaces/+=".into(),
            id: Uuid::from_u128(7),
        }
    }

    #[test]
    fn a_cursor_decodes_to_the_position_it_was_encoded_from() {
        let cursor = encode(&position());
        assert_eq!(decode::<Position>(&cursor).unwrap(), position());
    }

    #[test]
    fn a_cursor_is_opaque_and_url_safe() {
        let cursor = encode(&position());
        assert!(!cursor.contains("key"), "the JSON inside must not show");
        assert!(cursor
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
    }

    #[test]
    fn garbage_is_refused_as_bad_user_input() {
        for garbage in ["", "not base64!", "bm90IGpzb24", &encode(&"just a string")] {
            let err = decode::<Position>(garbage).unwrap_err();
            assert_eq!(err.code(), "BAD_USER_INPUT", "{garbage:?}");
        }
    }
}
