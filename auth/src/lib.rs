//! Sign-in primitives shared by both APIs: password hashing (argon2id), access tokens (JWT,
//! HS256) and refresh tokens (random, stored only as a hash).
#![forbid(unsafe_code)]

use aggregates::{Actor, Role};
use argon2::password_hash::{rand_core::OsRng, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Argon2, PasswordHash};
use chrono::{Duration, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("the access token is missing, expired or invalid")]
    InvalidToken,
    #[error("could not hash the password")]
    Hashing,
    #[error("the password must be {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters")]
    WeakPassword,
}

/// Bounds on a password's length: long enough to resist guessing, short enough that argon2
/// work stays bounded.
pub const MIN_PASSWORD_CHARS: usize = 12;
pub const MAX_PASSWORD_CHARS: usize = 256;

/// The one password rule, for every place a password is set.
pub fn check_password(password: &str) -> Result<(), AuthError> {
    let chars = password.chars().count();
    if (MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&chars) {
        Ok(())
    } else {
        Err(AuthError::WeakPassword)
    }
}

/// What an access token says about its bearer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    /// User id.
    pub sub: Uuid,
    /// Tenant id.
    pub tid: Uuid,
    pub tenant: String,
    pub email: String,
    pub roles: Vec<Role>,
    /// The account a Partner user is linked to.
    pub account_id: Option<Uuid>,
    pub exp: i64,
    pub iat: i64,
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

    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map(|data| data.claims)
            .map_err(|_| AuthError::InvalidToken)
    }
}

pub fn hash_password(password: &str) -> Result<String, AuthError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|_| AuthError::Hashing)
}

pub fn verify_password(password: &str, stored_hash: &str) -> bool {
    PasswordHash::new(stored_hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A hash to verify against when the user does not exist, so an unknown e-mail costs the same
/// time as a wrong password.
pub fn dummy_password_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password("not-a-real-password").expect("argon2 with defaults"))
}

/// A new refresh token and the hash to store for it.
pub fn new_refresh_token() -> (String, Vec<u8>) {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let hash = refresh_token_hash(&token);
    (token, hash)
}

pub fn refresh_token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> Claims {
        Claims {
            sub: Uuid::from_u128(1),
            tid: Uuid::from_u128(2),
            tenant: "acme".into(),
            email: "a@acme.test".into(),
            roles: vec![Role::TenantAdmin],
            account_id: None,
            exp: 0,
            iat: 0,
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
    fn passwords_are_bounded_in_length() {
        assert!(check_password(&"x".repeat(11)).is_err());
        assert!(check_password(&"x".repeat(12)).is_ok());
        assert!(check_password(&"é".repeat(256)).is_ok());
        assert!(check_password(&"x".repeat(257)).is_err());
    }

    #[test]
    fn passwords_hash_with_argon2id_and_verify() {
        let hash = hash_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("wrong", &hash));
    }
}
