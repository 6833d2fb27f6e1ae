//! Passwords: one length rule, argon2id hashes computed off the async workers, and a dummy hash
//! that makes an unknown user cost the same time as a wrong password. A new password's hash is
//! stored with the user's event, in its transaction (`event_store::Credential`); nothing else
//! handles passwords.
use argon2::password_hash::{rand_core::OsRng, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Argon2, PasswordHash};

use crate::AuthError;

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

/// A new password's argon2id hash, checked against the rule first and computed on a blocking
/// thread (argon2 takes tens of milliseconds of CPU and ~18 MB). Servers go through
/// `Identity::hash_password`, which also caps how many run at once.
pub async fn hash_new_password(password: String) -> Result<String, AuthError> {
    check_password(&password)?;
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|_| AuthError::Hashing)?
}

fn hash_password(password: &str) -> Result<String, AuthError> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
