//! The event hash, computed in Rust exactly as the insert trigger computes it in SQL, so a chain
//! can be checked without the database (an export) and a database's own functions are not
//! trusted to check themselves. Each event names the chain version it was hashed under.
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// A SHA-256 digest: an event's hash, or a root over stream heads.
pub type Hash = [u8; 32];

/// Version 1, the events stored before migration 0022: `sha256(previous ‖
/// json_build_array(type, id, sequence, event type, version, payload, metadata)::text)`.
pub const V1: i16 = 1;
/// Version 2, every event since: also covers the tenant, the global position and `recorded_at`.
pub const V2: i16 = 2;

/// What an event's hash covers, borrowed from a stored row or an export line.
#[derive(Debug, Clone, Copy)]
pub struct EventContent<'a> {
    pub chain_version: i16,
    pub tenant_id: Uuid,
    pub aggregate_type: &'a str,
    pub aggregate_id: &'a str,
    pub sequence: i64,
    pub global_position: i64,
    pub recorded_at: DateTime<Utc>,
    pub event_type: &'a str,
    pub event_version: &'a str,
    /// The payload's JSON text exactly as stored (version 1 hashes it whole).
    pub payload: &'a str,
    pub metadata: &'a str,
}

impl EventContent<'_> {
    /// The hash chained to `previous` (none for a stream's first event); `None` for a chain
    /// version this build does not know.
    pub fn hash(&self, previous: Option<&Hash>) -> Option<Hash> {
        let mut digest = Sha256::new();
        if let Some(previous) = previous {
            digest.update(previous);
        }
        match self.chain_version {
            V1 => digest.update(self.v1_text()),
            V2 => self.v2_fields(&mut digest),
            _ => return None,
        }
        Some(digest.finalize().into())
    }

    /// What `json_build_array(...)::text` prints: strings escaped as Postgres's `escape_json`
    /// does, JSON values verbatim, items separated by ", ".
    fn v1_text(&self) -> String {
        format!(
            "[{}, {}, {}, {}, {}, {}, {}]",
            postgres_json_string(self.aggregate_type),
            postgres_json_string(self.aggregate_id),
            self.sequence,
            postgres_json_string(self.event_type),
            postgres_json_string(self.event_version),
            self.payload,
            self.metadata,
        )
    }

    /// `event_hash_v2` in migration 0022: 8-byte big-endian integers, text as its digest.
    fn v2_fields(&self, digest: &mut Sha256) {
        let text = |value: &str| Sha256::digest(value.as_bytes());
        digest.update([2u8]);
        digest.update(self.tenant_id.as_bytes());
        digest.update(text(self.aggregate_type));
        digest.update(text(self.aggregate_id));
        digest.update(self.sequence.to_be_bytes());
        digest.update(self.global_position.to_be_bytes());
        digest.update(self.recorded_at.timestamp_micros().to_be_bytes());
        digest.update(text(self.event_type));
        digest.update(text(self.event_version));
        digest.update(text(trim_json(self.payload)));
        digest.update(text(trim_json(self.metadata)));
    }
}

/// The JSON text without the whitespace JSON allows around a value (`btrim(…, e' \t\n\r')`).
pub fn trim_json(text: &str) -> &str {
    text.trim_matches([' ', '\t', '\n', '\r'])
}

/// A string as Postgres's `escape_json` writes it.
fn postgres_json_string(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c < ' ' => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content(chain_version: i16) -> EventContent<'static> {
        EventContent {
            chain_version,
            tenant_id: Uuid::nil(),
            aggregate_type: "Account",
            aggregate_id: "a\"b\\c\n\u{1}é",
            sequence: 2,
            global_position: 7,
            recorded_at: DateTime::from_timestamp_micros(1_714_566_896_123_456).unwrap(),
            event_type: "AccountOpened",
            event_version: "1.0",
            payload: " {\"a\": 1} ",
            metadata: "{}",
        }
    }

    #[test]
    fn version_one_text_is_what_postgres_json_build_array_prints() {
        assert_eq!(
            content(V1).v1_text(),
            r#"["Account", "a\"b\\c\n\u0001é", 2, "AccountOpened", "1.0",  {"a": 1} , {}]"#
        );
    }

    #[test]
    fn version_two_covers_what_version_one_left_out() {
        let base = content(V2);
        let hash = base.hash(None).unwrap();
        let moved = EventContent {
            global_position: 8,
            ..base
        };
        let backdated = EventContent {
            recorded_at: base.recorded_at - chrono::Duration::days(400),
            ..base
        };
        let elsewhere = EventContent {
            tenant_id: Uuid::from_u128(1),
            ..base
        };
        for changed in [moved, backdated, elsewhere] {
            assert_ne!(changed.hash(None).unwrap(), hash);
        }
        let padded = EventContent {
            payload: "{\"a\": 1}",
            ..base
        };
        assert_eq!(
            padded.hash(None),
            Some(hash),
            "whitespace around a value is not hashed"
        );
        assert_ne!(base.hash(Some(&hash)), Some(hash));
    }

    #[test]
    fn an_unknown_chain_version_has_no_hash() {
        assert_eq!(content(3).hash(None), None);
    }
}
