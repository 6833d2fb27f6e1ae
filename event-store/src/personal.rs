//! Crypto-shredding: personal data is sealed on its way into the store and revealed on its way
//! out. The aggregates say which fields of an event are personal and whom they are about
//! (`aggregates::PersonalData`); the append replaces each such field, before the event is hashed,
//! with an envelope `{"sealed": <key id>, "box": <base64 of nonce and ciphertext>}` made with
//! XChaCha20-Poly1305 under a key of that subject (table `subject_keys`, migration 0032), the
//! field's name bound in as associated data so a box cannot be moved to another field.
//!
//! Everything downstream of the store (the relay, RabbitMQ, parked messages, webhook bodies)
//! carries envelopes. Whatever reads events as domain events first calls [`reveal`]: an envelope
//! whose key is live becomes its plain text again, one whose key was destroyed by forgetting its
//! subject becomes [`aggregates::ERASED`]. The stored bytes never change, so the hash chain
//! verifies before and after.
use std::collections::hash_map::Entry;
use std::collections::HashMap;

use aggregates::{Personal, Subject, ERASED};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde_json::{json, Value};
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::{StoreError, StoredEvent};

const SEALED: &str = "sealed";
const BOX: &str = "box";
const NONCE_LEN: usize = 24;

/// A subject's key as an append seals with it.
struct SubjectKey {
    id: Uuid,
    secret: [u8; 32],
}

/// What an append's sealing adds to its statement.
#[derive(Debug, Default)]
pub(crate) struct Sealed {
    /// Keys first used by this append: they commit with its events.
    pub new_key_ids: Vec<Uuid>,
    pub new_key_subjects: Vec<String>,
    pub new_key_secrets: Vec<Vec<u8>>,
    /// The user's sign-in address in plain text, for the credentials trigger (0032).
    pub sign_in_email: Option<String>,
}

/// Seals the personal fields of `payloads` (each event's, as `personal` says) for `tenant`,
/// with each subject's newest live key or, for a subject without one, a new key.
pub(crate) async fn seal<'c>(
    conn: impl PgExecutor<'c> + Copy,
    tenant: Uuid,
    personal: &[Option<Personal>],
    payloads: &mut [Value],
) -> Result<Sealed, StoreError> {
    let mut sealed = Sealed::default();
    let mut keys: HashMap<Subject, SubjectKey> = HashMap::new();
    for (personal, payload) in personal.iter().zip(payloads.iter_mut()) {
        let Some(personal) = personal else { continue };
        let body = body_mut(payload).ok_or_else(|| storage("an event without a body"))?;
        let texts = personal_texts(body, personal)?;
        if texts.is_empty() {
            continue;
        }
        let key = match keys.entry(personal.subject) {
            Entry::Occupied(known) => known.into_mut(),
            Entry::Vacant(new) => {
                new.insert(subject_key(conn, tenant, personal.subject, &mut sealed).await?)
            }
        };
        for (field, plain) in texts {
            if personal.sign_in == Some(field) {
                sealed.sign_in_email = Some(plain.clone());
            }
            body[field] = seal_text(key, field, &plain)?;
        }
    }
    Ok(sealed)
}

/// The text of each personal field that holds one (an optional field left out is `null`). A
/// field the body lacks is an error: a renamed field must not slip into the store in clear.
fn personal_texts(
    body: &Value,
    personal: &Personal,
) -> Result<Vec<(&'static str, String)>, StoreError> {
    let mut texts = Vec::new();
    for field in personal.fields {
        match body.get(*field) {
            Some(Value::String(plain)) => texts.push((*field, plain.clone())),
            Some(Value::Null) => {}
            _ => {
                return Err(storage(format!(
                    "personal field `{field}` is missing or no text"
                )))
            }
        }
    }
    Ok(texts)
}

/// The subject's newest live key, or a new one recorded in `sealed` to commit with the append.
async fn subject_key<'c>(
    conn: impl PgExecutor<'c>,
    tenant: Uuid,
    subject: Subject,
    sealed: &mut Sealed,
) -> Result<SubjectKey, StoreError> {
    let live: Option<(Uuid, Vec<u8>)> =
        sqlx::query_as("select key_id, secret from subject_key($1, $2)")
            .bind(tenant)
            .bind(subject.to_string())
            .fetch_optional(conn)
            .await?;
    if let Some((id, secret)) = live {
        let secret = secret
            .try_into()
            .map_err(|_| storage(format!("the key of {subject} is not 32 bytes")))?;
        return Ok(SubjectKey { id, secret });
    }
    let key = SubjectKey {
        id: Uuid::new_v4(),
        secret: rand::random(),
    };
    sealed.new_key_ids.push(key.id);
    sealed.new_key_subjects.push(subject.to_string());
    sealed.new_key_secrets.push(key.secret.to_vec());
    Ok(key)
}

fn seal_text(key: &SubjectKey, field: &str, plain: &str) -> Result<Value, StoreError> {
    let nonce: [u8; NONCE_LEN] = rand::random();
    let cipher = XChaCha20Poly1305::new(&key.secret.into());
    let boxed = cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: plain.as_bytes(),
                aad: field.as_bytes(),
            },
        )
        .map_err(|_| storage("sealing a personal field failed"))?;
    let mut bytes = nonce.to_vec();
    bytes.extend(boxed);
    Ok(json!({ SEALED: key.id, BOX: BASE64.encode(bytes) }))
}

/// Replaces every envelope in `payloads` (each with the tenant of its event) by its plain text,
/// or by [`ERASED`] when its key was destroyed. One query for all of them, none when no payload
/// holds an envelope.
pub async fn reveal<'c>(
    conn: impl PgExecutor<'c>,
    payloads: Vec<(Uuid, &mut Value)>,
) -> Result<(), StoreError> {
    reveal_with(
        conn,
        payloads,
        "select key_id, secret from subject_secrets($1, $2)",
    )
    .await
}

/// [`reveal`] for a transaction that writes what it reveals (a projector's): the keys it used
/// stay locked until it ends, so a forgetting commits only after those rows do, and the
/// read models' erasure, which follows the forgetting, finds them.
pub async fn reveal_holding_keys<'c>(
    conn: impl PgExecutor<'c>,
    payloads: Vec<(Uuid, &mut Value)>,
) -> Result<(), StoreError> {
    let held = "select key_id, secret from subject_secrets_held($1, $2)";
    reveal_with(conn, payloads, held).await
}

async fn reveal_with<'c>(
    conn: impl PgExecutor<'c>,
    payloads: Vec<(Uuid, &mut Value)>,
    statement: &str,
) -> Result<(), StoreError> {
    let mut envelopes: Vec<(Uuid, &str, &mut Value)> = Vec::new();
    for (tenant, payload) in payloads {
        let Some(body) = body_mut(payload).and_then(Value::as_object_mut) else {
            continue;
        };
        for (field, value) in body.iter_mut() {
            if key_of(value).is_some() {
                envelopes.push((tenant, field.as_str(), value));
            }
        }
    }
    if envelopes.is_empty() {
        return Ok(());
    }
    let (tenants, ids): (Vec<Uuid>, Vec<Uuid>) = envelopes
        .iter()
        .filter_map(|(tenant, _, value)| Some((*tenant, key_of(value)?)))
        .unzip();
    let secrets: HashMap<Uuid, Vec<u8>> = sqlx::query_as(statement)
        .bind(&tenants)
        .bind(&ids)
        .fetch_all(conn)
        .await?
        .into_iter()
        .collect();
    for (_, field, value) in envelopes {
        let plain = match key_of(value).and_then(|id| secrets.get(&id)) {
            Some(secret) => open(secret, field, value)?,
            None => ERASED.to_owned(),
        };
        *value = Value::String(plain);
    }
    Ok(())
}

/// Whether a stored payload holds any envelope (most events hold none, and need no reveal).
pub fn holds_sealed(payload: &Value) -> bool {
    payload
        .as_object()
        .and_then(|tagged| tagged.values().next())
        .and_then(Value::as_object)
        .is_some_and(|body| body.values().any(|value| key_of(value).is_some()))
}

/// [`reveal`] for events read with their columns.
pub async fn reveal_events<'c>(
    conn: impl PgExecutor<'c>,
    events: &mut [StoredEvent],
) -> Result<(), StoreError> {
    let payloads = events
        .iter_mut()
        .map(|e| (e.tenant_id, &mut e.payload))
        .collect();
    reveal(conn, payloads).await
}

fn open(secret: &[u8], field: &str, envelope: &Value) -> Result<String, StoreError> {
    let unreadable = || storage(format!("the sealed field `{field}` does not open"));
    let bytes = envelope[BOX]
        .as_str()
        .and_then(|b| BASE64.decode(b).ok())
        .filter(|b| b.len() > NONCE_LEN)
        .ok_or_else(unreadable)?;
    let (nonce, boxed) = bytes.split_at(NONCE_LEN);
    let cipher = XChaCha20Poly1305::new_from_slice(secret).map_err(|_| unreadable())?;
    let plain = cipher
        .decrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: boxed,
                aad: field.as_bytes(),
            },
        )
        .map_err(|_| unreadable())?;
    String::from_utf8(plain).map_err(|_| unreadable())
}

/// The key an envelope was sealed with; `None` for any other value.
fn key_of(value: &Value) -> Option<Uuid> {
    let envelope = value.as_object()?;
    if envelope.len() != 2 || !envelope.get(BOX)?.is_string() {
        return None;
    }
    envelope.get(SEALED)?.as_str()?.parse().ok()
}

/// The body of a stored payload: the object under its event type's tag.
fn body_mut(payload: &mut Value) -> Option<&mut Value> {
    payload.as_object_mut()?.values_mut().next()
}

fn storage(reason: impl Into<String>) -> StoreError {
    StoreError::Storage(reason.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SubjectKey {
        SubjectKey {
            id: Uuid::new_v4(),
            secret: rand::random(),
        }
    }

    #[test]
    fn a_sealed_field_opens_with_its_key_and_under_its_own_name_only() {
        let key = key();
        let envelope = seal_text(&key, "email", "pat@example.com").unwrap();
        assert_eq!(key_of(&envelope), Some(key.id));
        assert!(!envelope.to_string().contains("pat@example.com"));
        assert_eq!(
            open(&key.secret, "email", &envelope).unwrap(),
            "pat@example.com"
        );
        assert!(open(&key.secret, "display_name", &envelope).is_err());
        assert!(open(&self::key().secret, "email", &envelope).is_err());
    }

    #[test]
    fn sealing_the_same_text_twice_gives_different_boxes() {
        let key = key();
        let first = seal_text(&key, "email", "pat@example.com").unwrap();
        let second = seal_text(&key, "email", "pat@example.com").unwrap();
        assert_ne!(first[BOX], second[BOX]);
    }

    #[test]
    fn only_an_envelope_is_taken_for_one() {
        let id = Uuid::new_v4();
        assert_eq!(key_of(&json!({"sealed": id, "box": "AA"})), Some(id));
        for other in [
            json!("text"),
            json!({"sealed": id}),
            json!({"sealed": "not a uuid", "box": "AA"}),
            json!({"sealed": id, "box": "AA", "more": 1}),
            json!({"sealed": id, "box": 1}),
        ] {
            assert_eq!(key_of(&other), None, "{other}");
        }
    }
}
