//! Events as the audit tools read them: the columns a hash covers, as stored text.
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::chain::{EventContent, Hash};
use super::walk::Link;

/// `events e` with its predecessor's hash: `previous_hash` comes from [`PREDECESSOR`] or a
/// window over the stream.
pub(crate) const CHAIN_COLUMNS: &str =
    "e.tenant_id, e.aggregate_type, e.aggregate_id, e.sequence, e.global_position, \
     e.recorded_at, e.event_type, e.event_version, e.payload::text as payload, \
     e.metadata::text as metadata, e.chain_version, e.hash";

/// The stored predecessor of each `events e` row, one primary-key probe each.
pub(crate) const PREDECESSOR: &str = "left join events p \
     on p.aggregate_type = e.aggregate_type and p.aggregate_id = e.aggregate_id \
    and p.sequence = e.sequence - 1";

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct ChainRow {
    pub tenant_id: Uuid,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub global_position: i64,
    pub recorded_at: DateTime<Utc>,
    pub event_type: String,
    pub event_version: String,
    pub payload: String,
    pub metadata: String,
    pub chain_version: i16,
    pub hash: Vec<u8>,
    pub previous_hash: Option<Vec<u8>>,
}

impl ChainRow {
    pub fn content(&self) -> EventContent<'_> {
        EventContent {
            chain_version: self.chain_version,
            tenant_id: self.tenant_id,
            aggregate_type: &self.aggregate_type,
            aggregate_id: &self.aggregate_id,
            sequence: self.sequence,
            global_position: self.global_position,
            recorded_at: self.recorded_at,
            event_type: &self.event_type,
            event_version: &self.event_version,
            payload: &self.payload,
            metadata: &self.metadata,
        }
    }

    pub fn previous(&self) -> Option<Hash> {
        self.previous_hash.as_deref().map(hash_or_zero)
    }

    /// The row as the walk sees it, its hash recomputed here.
    pub fn link(&self) -> Link<'_> {
        let previous = self.previous();
        let stored = to_hash(&self.hash);
        let recomputed = self.content().hash(previous.as_ref());
        Link {
            aggregate_type: &self.aggregate_type,
            aggregate_id: &self.aggregate_id,
            sequence: self.sequence,
            global_position: self.global_position,
            chain_version: self.chain_version,
            previous,
            hash: stored.unwrap_or_default(),
            intact: stored.is_some() && recomputed == stored,
        }
    }
}

/// A stored digest; `None` when it is not 32 bytes (it was tampered with).
pub(crate) fn to_hash(bytes: &[u8]) -> Option<Hash> {
    bytes.try_into().ok()
}

/// A stored digest, a wrong-sized one read as zeros (which matches no real hash).
pub(crate) fn hash_or_zero(bytes: &[u8]) -> Hash {
    to_hash(bytes).unwrap_or_default()
}
