//! A signed checkpoint of one tenant's history: what it says, and how it is signed and checked.
//! Nothing here touches the database, so the offline export check uses exactly this.
use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::chain::Hash;

/// A stream: its aggregate type and id.
pub type StreamKey = (String, String);

/// A stream's last event as a checkpoint signs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    pub sequence: i64,
    pub hash: Hash,
}

/// Every stream's head, in the order the root hashes them (type, then id, bytewise).
pub type Heads = BTreeMap<StreamKey, Head>;

/// One hash over every head: sha256 of a tag line, then per stream its length-prefixed type and
/// id, its sequence (8 bytes, big-endian) and its hash. Verifiers always hold the whole list (an
/// export carries it), so a plain list hash does what a Merkle tree would.
pub fn heads_root(heads: &Heads) -> Hash {
    let mut digest = Sha256::new();
    digest.update(b"b2b audit heads v1\n");
    for ((aggregate_type, aggregate_id), head) in heads {
        for text in [aggregate_type, aggregate_id] {
            digest.update((text.len() as u32).to_be_bytes());
            digest.update(text.as_bytes());
        }
        digest.update(head.sequence.to_be_bytes());
        digest.update(head.hash);
    }
    digest.finalize().into()
}

/// What a checkpoint states. The signature covers `text()`, lines anyone can rebuild.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statement {
    pub tenant_id: Uuid,
    pub number: i64,
    pub last_global_position: i64,
    pub streams: i64,
    pub events: i64,
    pub made_at: DateTime<Utc>,
    #[serde(with = "hex::serde")]
    pub heads_root: Hash,
}

impl Statement {
    /// The statement over `heads`: its counts and root follow from them.
    pub fn over(
        tenant_id: Uuid,
        number: i64,
        last_global_position: i64,
        heads: &Heads,
        made_at: DateTime<Utc>,
    ) -> Self {
        Self {
            tenant_id,
            number,
            last_global_position,
            streams: heads.len() as i64,
            events: heads.values().map(|head| head.sequence).sum(),
            made_at,
            heads_root: heads_root(heads),
        }
    }

    /// The signed bytes.
    pub fn text(&self) -> String {
        format!(
            "b2b audit checkpoint v1\ntenant: {}\nnumber: {}\nlast_global_position: {}\n\
             streams: {}\nevents: {}\nmade_at: {}\nheads_root: {}\n",
            self.tenant_id,
            self.number,
            self.last_global_position,
            self.streams,
            self.events,
            self.made_at.to_rfc3339_opts(SecondsFormat::Micros, true),
            hex::encode(self.heads_root),
        )
    }
}

/// A statement with its signature and the signer's public key (base64 in JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedCheckpoint {
    #[serde(flatten)]
    pub statement: Statement,
    #[serde(with = "base64_text")]
    pub public_key: Vec<u8>,
    #[serde(with = "base64_text")]
    pub signature: Vec<u8>,
}

/// Why a checkpoint cannot be relied on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointProblem {
    #[error("checkpoint {number} is signed by another key ({public_key}), not the trusted one")]
    OtherKey { number: i64, public_key: String },
    #[error("checkpoint {number}'s signature does not verify with the trusted key")]
    BadSignature { number: i64 },
    #[error("checkpoint {number}'s stream heads no longer match what it signed")]
    HeadsChanged { number: i64 },
}

impl SignedCheckpoint {
    pub fn sign(statement: Statement, key: &SigningKey) -> Self {
        let signature = key.sign(statement.text().as_bytes());
        Self {
            public_key: key.verifying_key().as_bytes().to_vec(),
            signature: signature.to_bytes().to_vec(),
            statement,
        }
    }

    /// Signed by `trusted`, over exactly `heads`.
    pub fn check(&self, trusted: &VerifyingKey, heads: &Heads) -> Result<(), CheckpointProblem> {
        let number = self.statement.number;
        if self.public_key != trusted.as_bytes() {
            return Err(CheckpointProblem::OtherKey {
                number,
                public_key: STANDARD.encode(&self.public_key),
            });
        }
        let signature = Signature::from_slice(&self.signature).ok();
        let signed = signature.is_some_and(|signature| {
            trusted
                .verify_strict(self.statement.text().as_bytes(), &signature)
                .is_ok()
        });
        if !signed {
            return Err(CheckpointProblem::BadSignature { number });
        }
        let over = Statement::over(
            self.statement.tenant_id,
            number,
            self.statement.last_global_position,
            heads,
            self.statement.made_at,
        );
        if over != self.statement {
            return Err(CheckpointProblem::HeadsChanged { number });
        }
        Ok(())
    }
}

/// Bytes as base64 text in JSON.
mod base64_text {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn heads() -> Heads {
        Heads::from([
            (
                ("Account".into(), "a".into()),
                Head {
                    sequence: 3,
                    hash: [1; 32],
                },
            ),
            (
                ("Quote".into(), "q".into()),
                Head {
                    sequence: 2,
                    hash: [2; 32],
                },
            ),
        ])
    }

    fn signed(key: &SigningKey) -> SignedCheckpoint {
        let statement = Statement::over(Uuid::nil(), 1, 9, &heads(), DateTime::UNIX_EPOCH);
        SignedCheckpoint::sign(statement, key)
    }

    #[test]
    fn a_checkpoint_counts_its_heads_and_checks_with_its_key() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let checkpoint = signed(&key);
        assert_eq!(
            (checkpoint.statement.streams, checkpoint.statement.events),
            (2, 5)
        );
        assert_eq!(checkpoint.check(&key.verifying_key(), &heads()), Ok(()));
    }

    #[test]
    fn another_key_a_changed_statement_or_changed_heads_are_refused() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let trusted = key.verifying_key();
        let forger = SigningKey::from_bytes(&[8; 32]);
        assert!(matches!(
            signed(&forger).check(&trusted, &heads()),
            Err(CheckpointProblem::OtherKey { .. })
        ));

        let mut moved = signed(&key);
        moved.statement.last_global_position = 8;
        assert_eq!(
            moved.check(&trusted, &heads()),
            Err(CheckpointProblem::BadSignature { number: 1 })
        );

        let mut fewer = heads();
        fewer.pop_last();
        assert_eq!(
            signed(&key).check(&trusted, &fewer),
            Err(CheckpointProblem::HeadsChanged { number: 1 })
        );
    }
}
