//! Access tokens (JWT, HS256, short-lived) and refresh tokens (random, stored only as a hash).
use aggregates::{Actor, Role};
use chrono::{Duration, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::AuthError;

/// What an access token says about its bearer. Once admitted, roles, account and e-mail are
/// the stored ones of this moment, not those at sign-in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    /// User id.
    pub sub: Uuid,
    /// Session id: admission checks the session is still live.
    pub sid: Uuid,
    /// Tenant id.
    pub tid: Uuid,
    pub tenant: String,
    pub email: String,
    pub roles: Vec<Role>,
    /// The account a Partner user is linked to.
    pub account_id: Option<Uuid>,
    pub exp: i64,
    pub iat: i64,
    /// Admitted by an API key rather than a session: `sub` and `sid` are then the key's id.
    /// Never in an access token (a token that claims it is still a session's).
    #[serde(default, skip_serializing)]
    pub api_key: bool,
}

impl Claims {
    pub fn actor(&self) -> Actor {
        Actor::User {
            user_id: self.sub,
            roles: self.roles.clone(),
            account_id: self.account_id,
        }
    }
}

/// Issues and checks access tokens with one symmetric key.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    lifetime: Duration,
}

impl TokenKeys {
    pub fn new(secret: &[u8], lifetime: Duration) -> Self {
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            lifetime,
        }
    }

    pub fn lifetime_seconds(&self) -> i64 {
        self.lifetime.num_seconds()
    }

    pub fn issue(&self, mut claims: Claims) -> String {
        let now = Utc::now();
        claims.iat = now.timestamp();
        claims.exp = (now + self.lifetime).timestamp();
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing with an in-memory key cannot fail")
    }

    /// Signature, algorithm and expiry only; whether the session is still live is
    /// [`crate::Identity::admit`]'s question.
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map(|data| data.claims)
            .map_err(|_| AuthError::InvalidToken)
    }
}

/// The token of an `Authorization: Bearer <token>` header value; the scheme name is
/// case-insensitive (RFC 9110).
pub fn bearer_token(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// A new refresh token and the hash to store for it.
pub(crate) fn new_refresh_token() -> (String, Vec<u8>) {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let hash = refresh_token_hash(&token);
    (token, hash)
}

pub(crate) fn refresh_token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> Claims {
        Claims {
            sub: Uuid::from_u128(1),
            sid: Uuid::from_u128(3),
            tid: Uuid::from_u128(2),
            tenant: "acme".into(),
            email: "a@acme.test".into(),
            roles: vec![Role::TenantAdmin],
            account_id: None,
            exp: 0,
            iat: 0,
            api_key: false,
        }
    }

    #[test]
    fn a_token_verifies_with_its_key_only() {
        let keys = TokenKeys::new(b"secret-one", Duration::minutes(15));
        let token = keys.issue(claims());
        assert_eq!(keys.verify(&token).unwrap().sub, Uuid::from_u128(1));
        let other = TokenKeys::new(b"secret-two", Duration::minutes(15));
        assert!(other.verify(&token).is_err());
    }

    #[test]
    fn an_expired_token_is_refused() {
        let keys = TokenKeys::new(b"k", Duration::seconds(-5));
        assert!(keys.verify(&keys.issue(claims())).is_err());
    }

    #[test]
    fn a_tampered_token_is_refused() {
        let keys = TokenKeys::new(b"k", Duration::minutes(5));
        let token = keys.issue(claims());
        let (head, rest) = token.split_once('.').unwrap();
        let (_, signature) = rest.split_once('.').unwrap();
        let mut forged = claims();
        forged.roles = vec![Role::TenantAdmin, Role::Manager];
        forged.tid = Uuid::from_u128(99);
        let payload = serde_json::to_vec(&forged).unwrap();
        let payload = base64_url(&payload);
        assert!(keys
            .verify(&format!("{head}.{payload}.{signature}"))
            .is_err());
    }

    #[test]
    fn an_unsigned_token_is_refused() {
        let keys = TokenKeys::new(b"k", Duration::minutes(5));
        let header = base64_url(br#"{"alg":"none","typ":"JWT"}"#);
        let mut unsigned = claims();
        unsigned.exp = Utc::now().timestamp() + 60;
        let payload = base64_url(&serde_json::to_vec(&unsigned).unwrap());
        assert!(keys.verify(&format!("{header}.{payload}.")).is_err());
    }

    #[test]
    fn a_bearer_token_is_read_whatever_the_scheme_case() {
        for value in ["Bearer abc", "bearer abc", "BEARER   abc  "] {
            assert_eq!(bearer_token(value), Some("abc"));
        }
        for value in ["Basic abc", "Bearer", "Bearer   ", "abc", ""] {
            assert_eq!(bearer_token(value), None, "{value}");
        }
    }

    fn base64_url(bytes: &[u8]) -> String {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }
}
