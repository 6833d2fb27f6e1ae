//! Two-factor sign-in with TOTP (RFC 6238: HMAC-SHA-1, 6 digits, 30-second steps, via
//! `totp-rs`). A user enrols (the secret is shown once, as an otpauth URI) and confirms with a
//! first code, which also makes their single-use recovery codes. From then on a correct
//! password answers with an `mfa_token` instead of a session, and the session comes from
//! `POST /auth/login/totp` with a code or a recovery code. A tenant's policy may require TOTP
//! for some roles (`TenantPolicy::mfa_required_roles`): such a user who has not enrolled yet
//! gets an `mfa_token` for enrolling, and confirming it completes the sign-in.
//!
//! A code is accepted for the current step or one either side (clock drift), and only for a
//! step later than the last accepted one, so no code is used twice. Every code tried after a
//! password counts toward the same sign-in lockout as the password (the source's address, the
//! tenant slug and the e-mail), and a success clears it.
use aggregates::{DomainError, RuleCode};
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use subtle::ConstantTimeEq;
use totp_rs::{Algorithm, TOTP};
use uuid::Uuid;

use crate::AuthError;

pub const STEP_SECONDS: u64 = 30;
pub const DIGITS: usize = 6;
/// 160-bit secrets, as RFC 4226 recommends.
const SECRET_BYTES: usize = 20;
/// Recovery codes made at each confirmation.
pub const RECOVERY_CODES: usize = 10;
/// How long an `mfa_token` stays usable.
pub const CHALLENGE_SECONDS: i64 = 300;
/// Who the authenticator app says the code is for.
const ISSUER: &str = "b2b";
/// Recovery codes: 10 characters of this alphabet (50 bits), shown as `xxxxx-xxxxx`.
const RECOVERY_ALPHABET: &[u8; 32] = b"abcdefghjkmnpqrstuvwxyz023456789";

fn generator(secret: Vec<u8>, label: String) -> TOTP {
    // The label is free text in the URI; a colon would split it into issuer and account.
    let label = label.replace(':', " ");
    TOTP::new_unchecked(
        Algorithm::SHA1,
        DIGITS,
        1,
        STEP_SECONDS,
        secret,
        Some(ISSUER.to_owned()),
        label,
    )
}

/// A new secret, and the otpauth URI an authenticator app reads (with the user's e-mail and
/// tenant as its label).
pub(crate) fn new_secret(email: &str, tenant_slug: &str) -> (Vec<u8>, String) {
    let mut secret = vec![0u8; SECRET_BYTES];
    rand::thread_rng().fill_bytes(&mut secret);
    let uri = generator(secret.clone(), format!("{email} ({tenant_slug})")).get_url();
    (secret, uri)
}

/// The step `code` is right for: within one step of `unix_time`'s and later than `last_step`.
pub(crate) fn accepted_step(
    secret: &[u8],
    code: &str,
    unix_time: u64,
    last_step: i64,
) -> Option<i64> {
    if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let totp = generator(secret.to_vec(), String::new());
    let now = unix_time / STEP_SECONDS;
    [now.saturating_sub(1), now, now + 1]
        .into_iter()
        .filter(|step| i64::try_from(*step).is_ok_and(|s| s > last_step))
        .find(|step| {
            let expected = totp.generate(step * STEP_SECONDS);
            bool::from(expected.as_bytes().ct_eq(code.as_bytes()))
        })
        .and_then(|step| i64::try_from(step).ok())
}

/// The code an authenticator shows at `unix_time` (tests and examples compute codes with it).
pub fn code_at(secret: &[u8], unix_time: u64) -> String {
    generator(secret.to_vec(), String::new()).generate(unix_time)
}

/// A secret as the otpauth URI carries it (base32, no padding), back to bytes.
pub fn secret_from_uri(uri: &str) -> Option<Vec<u8>> {
    let query = uri.split_once('?')?.1;
    let encoded = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("secret="))?;
    totp_rs::Secret::Encoded(encoded.to_owned()).to_bytes().ok()
}

/// New recovery codes and their hashes.
fn new_recovery_codes() -> Vec<(String, Vec<u8>)> {
    let mut rng = rand::thread_rng();
    (0..RECOVERY_CODES)
        .map(|_| {
            let mut bytes = [0u8; 10];
            rng.fill_bytes(&mut bytes);
            let chars: String = bytes
                .iter()
                .map(|b| RECOVERY_ALPHABET[usize::from(b % 32)] as char)
                .collect();
            let code = format!("{}-{}", &chars[..5], &chars[5..]);
            let hash = recovery_hash(&code);
            (code, hash)
        })
        .collect()
}

/// A recovery code as typed (any case, with or without the dash or spaces), hashed.
fn recovery_hash(code: &str) -> Vec<u8> {
    let normal: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    Sha256::digest(normal.as_bytes()).to_vec()
}

/// Whether `code` looks like a recovery code rather than a TOTP code.
fn is_recovery_code(code: &str) -> bool {
    code.chars().filter(|c| c.is_ascii_alphanumeric()).count() == 10
}

/// A user's TOTP as stored.
#[derive(sqlx::FromRow)]
pub(crate) struct Stored {
    pub secret: Vec<u8>,
    pub confirmed: bool,
    pub last_step: i64,
}

/// The user's TOTP, locked for this transaction (two codes at once take turns).
pub(crate) async fn stored(
    conn: &mut PgConnection,
    user_id: Uuid,
) -> Result<Option<Stored>, AuthError> {
    Ok(sqlx::query_as(
        "select secret, confirmed_at is not null as confirmed, last_step from user_totp \
          where user_id = $1 for update",
    )
    .bind(user_id)
    .fetch_optional(conn)
    .await?)
}

/// Starts (or restarts) an enrolment; refused once TOTP is confirmed.
pub(crate) async fn enrol(
    conn: &mut PgConnection,
    (tenant_id, user_id): (Uuid, Uuid),
    secret: &[u8],
) -> Result<(), AuthError> {
    let started = sqlx::query(
        "insert into user_totp (user_id, tenant_id, secret) values ($1, $2, $3) \
         on conflict (user_id) do update set secret = excluded.secret, enrolled_at = now(), \
                                              last_step = 0 \
          where user_totp.confirmed_at is null",
    )
    .bind(user_id)
    .bind(tenant_id)
    .bind(secret)
    .execute(conn)
    .await?;
    if started.rows_affected() == 0 {
        return Err(DomainError::rule(
            RuleCode::TotpAlreadyEnabled,
            "two-factor sign-in is already enabled for this user",
        )
        .into());
    }
    Ok(())
}

/// Checks `code` for the user (a TOTP code, or, once confirmed, an unused recovery code) and
/// uses it up. `false` when it is wrong, replayed, or no TOTP is enrolled.
pub(crate) async fn use_code(
    conn: &mut PgConnection,
    user_id: Uuid,
    code: &str,
    unix_time: u64,
) -> Result<bool, AuthError> {
    let Some(stored) = stored(conn, user_id).await? else {
        return Ok(false);
    };
    if stored.confirmed && is_recovery_code(code) {
        let used = sqlx::query(
            "update totp_recovery_codes set used_at = now() \
              where user_id = $1 and code_hash = $2 and used_at is null",
        )
        .bind(user_id)
        .bind(recovery_hash(code))
        .execute(conn)
        .await?;
        return Ok(used.rows_affected() == 1);
    }
    let Some(step) = accepted_step(&stored.secret, code.trim(), unix_time, stored.last_step) else {
        return Ok(false);
    };
    sqlx::query("update user_totp set last_step = $2 where user_id = $1")
        .bind(user_id)
        .bind(step)
        .execute(conn)
        .await?;
    Ok(true)
}

/// Confirms the enrolment (after `use_code` accepted a code) and makes new recovery codes,
/// replacing any earlier ones; answers them, the only time they are shown.
pub(crate) async fn confirm(
    conn: &mut PgConnection,
    (tenant_id, user_id): (Uuid, Uuid),
) -> Result<Vec<String>, AuthError> {
    sqlx::query("update user_totp set confirmed_at = now() where user_id = $1")
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    sqlx::query("delete from totp_recovery_codes where user_id = $1")
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    let codes = new_recovery_codes();
    let hashes: Vec<Vec<u8>> = codes.iter().map(|(_, hash)| hash.clone()).collect();
    sqlx::query(
        "insert into totp_recovery_codes (user_id, tenant_id, code_hash) \
         select $1, $2, unnest($3::bytea[])",
    )
    .bind(user_id)
    .bind(tenant_id)
    .bind(&hashes)
    .execute(conn)
    .await?;
    Ok(codes.into_iter().map(|(code, _)| code).collect())
}

/// What signing in with a correct password still needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SecondFactor {
    None,
    /// A code of the user's confirmed TOTP.
    Code,
    /// The tenant requires TOTP for one of the user's roles and the user has none yet.
    Enrolment,
}

/// Whether the user has confirmed TOTP, and whether the tenant's policy requires it for one of
/// their roles (`mfa_required_roles`).
pub(crate) async fn second_factor(
    conn: &mut PgConnection,
    (tenant_id, user_id): (Uuid, Uuid),
) -> Result<SecondFactor, AuthError> {
    let (enabled, required): (bool, bool) = sqlx::query_as(
        "select exists (select 1 from user_totp where user_id = $2 and confirmed_at is not null), \
                coalesce((select (p.policy -> 'mfa_required_roles') ?| c.roles \
                            from tenant_policies p, user_credentials c \
                           where p.tenant_id = $1 and c.user_id = $2), false)",
    )
    .bind(tenant_id)
    .bind(user_id)
    .fetch_one(conn)
    .await?;
    Ok(match (enabled, required) {
        (true, _) => SecondFactor::Code,
        (false, true) => SecondFactor::Enrolment,
        (false, false) => SecondFactor::None,
    })
}

/// A challenge between a correct password and its second factor.
#[derive(sqlx::FromRow)]
pub(crate) struct Challenge {
    pub tenant_id: Uuid,
    pub user_id: Uuid,
    pub tenant_slug: String,
    pub email: String,
    pub enroll: bool,
    pub live: bool,
}

/// Opens a challenge; answers its `mfa_token` (only the hash is stored).
pub(crate) async fn open_challenge(
    conn: &mut PgConnection,
    (tenant_id, user_id): (Uuid, Uuid),
    (tenant_slug, email): (&str, &str),
    enroll: bool,
) -> Result<String, AuthError> {
    let (token, hash) = crate::tokens::new_refresh_token();
    // The user's spent and expired challenges go as a new one comes: they are never read again.
    sqlx::query(
        "delete from mfa_challenges where user_id = $1 \
            and (used_at is not null or expires_at <= now())",
    )
    .bind(user_id)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "insert into mfa_challenges (token_hash, tenant_id, user_id, tenant_slug, email, enroll, \
                                     expires_at) \
         values ($1, $2, $3, $4, $5, $6, now() + $7 * interval '1 second')",
    )
    .bind(hash)
    .bind(tenant_id)
    .bind(user_id)
    .bind(tenant_slug)
    .bind(email)
    .bind(enroll)
    .bind(CHALLENGE_SECONDS as f64)
    .execute(conn)
    .await?;
    Ok(token)
}

/// The challenge an `mfa_token` names, locked; the transaction then acts for its tenant.
pub(crate) async fn lock_challenge(
    conn: &mut PgConnection,
    token: &str,
) -> Result<Option<Challenge>, AuthError> {
    let found: Option<Challenge> = sqlx::query_as(
        "select tenant_id, user_id, tenant_slug, email, enroll, live from mfa_challenge($1)",
    )
    .bind(crate::tokens::refresh_token_hash(token))
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(challenge) = &found {
        sqlx::query("select set_config('app.tenant_id', $1::text, true)")
            .bind(challenge.tenant_id)
            .execute(conn)
            .await?;
    }
    Ok(found)
}

/// A challenge completes one sign-in.
pub(crate) async fn close_challenge(conn: &mut PgConnection, token: &str) -> Result<(), AuthError> {
    sqlx::query("update mfa_challenges set used_at = now() where token_hash = $1")
        .bind(crate::tokens::refresh_token_hash(token))
        .execute(conn)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238's SHA-1 test secret and vectors (the last 6 of its 8 digits).
    const RFC_SECRET: &[u8] = b"12345678901234567890";

    #[test]
    fn codes_are_rfc_6238_s() {
        for (time, code) in [
            (59, "287082"),
            (1_111_111_109, "081804"),
            (1_234_567_890, "005924"),
            (2_000_000_000, "279037"),
        ] {
            assert_eq!(code_at(RFC_SECRET, time), code, "at {time}");
        }
    }

    #[test]
    fn a_code_is_accepted_within_a_step_of_now_and_never_twice() {
        let now = 1_234_567_890;
        let step = (now / STEP_SECONDS) as i64;
        let code = code_at(RFC_SECRET, now);
        assert_eq!(accepted_step(RFC_SECRET, &code, now, 0), Some(step));
        assert_eq!(
            accepted_step(RFC_SECRET, &code, now + 30, 0),
            Some(step),
            "drift"
        );
        assert_eq!(
            accepted_step(RFC_SECRET, &code, now + 90, 0),
            None,
            "too old"
        );
        assert_eq!(
            accepted_step(RFC_SECRET, &code, now, step),
            None,
            "replayed"
        );
        assert_eq!(accepted_step(RFC_SECRET, "12345", now, 0), None);
        assert_eq!(accepted_step(RFC_SECRET, "abcdef", now, 0), None);
    }

    #[test]
    fn the_uri_carries_the_secret_and_says_who_it_is_for() {
        let (secret, uri) = new_secret("ann@acme.test", "acme");
        assert!(uri.starts_with("otpauth://totp/b2b:"), "{uri}");
        assert!(uri.contains("issuer=b2b"), "{uri}");
        assert_eq!(secret_from_uri(&uri), Some(secret));
    }

    #[test]
    fn recovery_codes_are_distinct_and_read_however_typed() {
        let codes = new_recovery_codes();
        assert_eq!(codes.len(), RECOVERY_CODES);
        let (code, hash) = &codes[0];
        assert!(is_recovery_code(code));
        assert_eq!(&recovery_hash(&code.to_uppercase().replace('-', " ")), hash);
        let distinct: std::collections::BTreeSet<_> = codes.iter().map(|(c, _)| c).collect();
        assert_eq!(distinct.len(), RECOVERY_CODES);
        assert!(!is_recovery_code("123456"));
    }
}
