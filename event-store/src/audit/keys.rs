//! The checkpoint signing key and the public key verifiers hold, as text.
//!
//! A signing key is either a PKCS#8 PEM file as `openssl genpkey -algorithm ed25519` writes it,
//! or the 32-byte Ed25519 seed in base64. A public key is 32 bytes in base64 (what
//! `b2b audit public-key` prints) or a PEM `PUBLIC KEY` (`openssl pkey -pubout`).
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey};
pub use ed25519_dalek::{SigningKey, VerifyingKey};

use crate::StoreError;

pub fn signing_key(text: &str) -> Result<SigningKey, StoreError> {
    let text = text.trim();
    if text.starts_with("-----BEGIN") {
        return SigningKey::from_pkcs8_pem(text)
            .map_err(|e| key_error(format!("not an Ed25519 PKCS#8 private key: {e}")));
    }
    Ok(SigningKey::from_bytes(&seed(text)?))
}

pub fn public_key(text: &str) -> Result<VerifyingKey, StoreError> {
    let text = text.trim();
    if text.starts_with("-----BEGIN") {
        return VerifyingKey::from_public_key_pem(text)
            .map_err(|e| key_error(format!("not an Ed25519 public key: {e}")));
    }
    VerifyingKey::from_bytes(&seed(text)?)
        .map_err(|e| key_error(format!("not an Ed25519 public key: {e}")))
}

/// How `b2b audit public-key` prints a key, and how exports carry it.
pub fn public_key_text(key: &VerifyingKey) -> String {
    STANDARD.encode(key.as_bytes())
}

fn seed(text: &str) -> Result<[u8; 32], StoreError> {
    let bytes = STANDARD
        .decode(text)
        .map_err(|_| key_error("neither PEM nor base64".into()))?;
    bytes
        .try_into()
        .map_err(|bytes: Vec<u8>| key_error(format!("{} bytes, not 32", bytes.len())))
}

fn key_error(why: String) -> StoreError {
    StoreError::Audit(format!("audit key: {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 8410's example key, as openssl writes it.
    const PEM: &str = "-----BEGIN PRIVATE KEY-----\n\
        MC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n\
        -----END PRIVATE KEY-----\n";
    const PUBLIC_PEM: &str = "-----BEGIN PUBLIC KEY-----\n\
        MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n\
        -----END PUBLIC KEY-----\n";

    #[test]
    fn pem_and_base64_name_the_same_keys() {
        let from_pem = signing_key(PEM).unwrap();
        let seed = STANDARD.encode(from_pem.to_bytes());
        assert_eq!(signing_key(&seed).unwrap().to_bytes(), from_pem.to_bytes());
        let public = from_pem.verifying_key();
        assert_eq!(public_key(PUBLIC_PEM).unwrap(), public);
        assert_eq!(public_key(&public_key_text(&public)).unwrap(), public);
    }

    #[test]
    fn anything_else_is_refused_with_a_reason() {
        for (text, says) in [
            ("not a key", "neither PEM nor base64"),
            ("AAAA", "3 bytes, not 32"),
            (
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----",
                "PKCS#8",
            ),
        ] {
            let error = signing_key(text).unwrap_err().to_string();
            assert!(error.contains(says), "{text}: {error}");
        }
    }
}
