//! API keys for machine clients: a TenantAdmin grants a key roles (and, for a Partner key, an
//! account), a name and an expiry. The secret, `b2bk_` then the key's id and 32 random bytes (in
//! lower-case hex), is shown once and only its SHA-256 is stored. It is a random 256-bit value,
//! so a fast hash is the right one (argon2 is for guessable passwords). A presented key is found
//! by the id it names and its hash compared in constant time.
//!
//! A key is admitted like a session (`admission`): its roles, account and quota as stored now,
//! rate-limited as a user of its own, cached on every replica until its revocation is heard.
//! Writes made with a key carry its id as the actor (`user_id` and `api_key_id` in the event
//! metadata). Keys do not manage keys: only a signed-in TenantAdmin does.
use std::collections::BTreeSet;

use aggregates::{DomainError, Role, RuleCode, Text};
use chrono::{DateTime, Duration, Utc};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::Claims;

/// What every API key starts with, so a bearer value names its kind.
pub const API_KEY_PREFIX: &str = "b2bk_";
/// After the prefix: the key's id (32 hex characters), then 32 random bytes (64 hex).
const ID_HEX_CHARS: usize = 32;
const SECRET_HEX_CHARS: usize = 64;
/// Longest key name.
pub const MAX_KEY_NAME_CHARS: usize = aggregates::limits::NAME_MAX;
/// Longest lifetime a key may be given.
pub const MAX_KEY_LIFETIME_DAYS: i64 = 730;

/// Whether a bearer value is meant as an API key (rather than an access token).
pub fn is_api_key(bearer: &str) -> bool {
    bearer.starts_with(API_KEY_PREFIX)
}

/// A presented key: the id it names and the hash of the whole value. `None` for anything that
/// cannot be a key, so a malformed one costs no database round trip.
pub(crate) fn parse_key(bearer: &str) -> Option<(Uuid, [u8; 32])> {
    let rest = bearer.strip_prefix(API_KEY_PREFIX)?;
    let lower_hex = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    if rest.len() != ID_HEX_CHARS + SECRET_HEX_CHARS || !lower_hex(rest) {
        return None;
    }
    let id = Uuid::try_parse(&rest[..ID_HEX_CHARS]).ok()?;
    Some((id, Sha256::digest(bearer.as_bytes()).into()))
}

/// A new secret for key `id` and its hash.
fn new_secret(id: Uuid) -> (String, [u8; 32]) {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let secret = format!("{API_KEY_PREFIX}{}{hex}", id.simple());
    let (_, hash) = parse_key(&secret).expect("a new secret is well formed");
    (secret, hash)
}

/// Whether a presented key's hash is the stored one, in constant time: the key is found by its
/// id, so this is the only comparison its secret meets.
pub(crate) fn hash_matches(presented: &[u8; 32], stored: &[u8]) -> bool {
    presented.ct_eq(stored).into()
}

/// What a TenantAdmin asks for.
#[derive(Debug, Clone)]
pub struct KeyRequest {
    pub name: String,
    pub roles: Vec<Role>,
    pub account_id: Option<Uuid>,
    pub expires_at: DateTime<Utc>,
}

/// A key grant that passed the rules.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyGrant {
    pub name: String,
    /// Sorted, without duplicates.
    pub roles: Vec<Role>,
    pub account_id: Option<Uuid>,
    pub expires_at: DateTime<Utc>,
}

/// Only a signed-in TenantAdmin manages keys: a key never makes or revokes keys, so a leaked
/// one cannot entrench itself.
pub fn may_manage_keys(caller: &Claims) -> Result<(), DomainError> {
    if caller.api_key {
        return Err(DomainError::Forbidden(
            "API keys are managed by a signed-in TenantAdmin, not by a key".into(),
        ));
    }
    caller
        .actor()
        .require_any(&[Role::TenantAdmin], "managing API keys")
}

impl KeyGrant {
    /// The rules of a new key, decided at `now`: a name, at least one role (Partner alone), an
    /// account exactly when the key is a Partner's, and an expiry after `now` and at most
    /// `MAX_KEY_LIFETIME_DAYS` later. Whether the account exists is asked afterwards.
    pub fn decide(
        caller: &Claims,
        request: KeyRequest,
        now: DateTime<Utc>,
    ) -> Result<Self, DomainError> {
        may_manage_keys(caller)?;
        let name = Text::parse("name", &request.name, MAX_KEY_NAME_CHARS)?;
        let roles: BTreeSet<Role> = request.roles.into_iter().collect();
        if roles.is_empty() {
            return Err(DomainError::invalid("roles", "name at least one role"));
        }
        if roles.contains(&Role::Partner) && roles.len() > 1 {
            return Err(DomainError::invalid(
                "roles",
                "Partner cannot be combined with other roles",
            ));
        }
        match (roles.contains(&Role::Partner), request.account_id) {
            (true, None) => {
                return Err(DomainError::rule(
                    RuleCode::PartnerNeedsAccount,
                    "a Partner key must name its account",
                ))
            }
            (false, Some(_)) => {
                return Err(DomainError::rule(
                    RuleCode::NotAPartner,
                    "only Partner keys name an account",
                ))
            }
            _ => {}
        }
        let latest = now + Duration::days(MAX_KEY_LIFETIME_DAYS);
        if request.expires_at <= now || request.expires_at > latest {
            return Err(DomainError::rule(
                RuleCode::KeyExpiryOutOfRange,
                format!(
                    "expires_at must be after now and at most {MAX_KEY_LIFETIME_DAYS} days ahead"
                ),
            ));
        }
        Ok(Self {
            name: name.as_str().to_owned(),
            roles: roles.into_iter().collect(),
            account_id: request.account_id,
            expires_at: request.expires_at,
        })
    }
}

/// A key just made: the secret is in this value and nowhere else.
#[derive(Debug)]
pub struct NewApiKey {
    pub id: Uuid,
    pub secret: String,
    pub expires_at: DateTime<Utc>,
}

/// A key as listed: never its secret or hash.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ApiKeyInfo {
    pub id: Uuid,
    pub name: String,
    pub roles: Vec<String>,
    pub account_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub created_by: Uuid,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub revoked_by: Option<Uuid>,
    pub last_used_at: Option<DateTime<Utc>>,
}

/// The columns `ApiKeyInfo` reads, for the query API's listing.
pub const API_KEY_COLUMNS: &str = "id, name, roles, account_id, created_at, created_by, \
    expires_at, revoked_at, revoked_by, last_used_at";

/// Stores a grant as key `id` of the caller's tenant, in `tx` (acting for that tenant).
pub(crate) async fn insert(
    tx: &mut sqlx::PgConnection,
    caller: &Claims,
    id: Uuid,
    grant: &KeyGrant,
) -> Result<Option<NewApiKey>, sqlx::Error> {
    let (secret, hash) = new_secret(id);
    let roles: Vec<&str> = grant.roles.iter().map(|r| r.as_str()).collect();
    let inserted = sqlx::query(
        "insert into api_keys (id, tenant_id, name, roles, account_id, secret_hash, expires_at, \
                               created_by) \
         values ($1, $2, $3, $4, $5, $6, $7, $8) on conflict (id) do nothing",
    )
    .bind(id)
    .bind(caller.tid)
    .bind(&grant.name)
    .bind(&roles)
    .bind(grant.account_id)
    .bind(&hash[..])
    .bind(grant.expires_at)
    .bind(caller.sub)
    .execute(tx)
    .await?;
    Ok((inserted.rows_affected() == 1).then_some(NewApiKey {
        id,
        secret,
        expires_at: grant.expires_at,
    }))
}

/// Whether `account` is an account of the transaction's tenant: its stream exists (the event
/// store, not a read model that may lag).
pub(crate) async fn account_exists(
    tx: &mut sqlx::PgConnection,
    account: Uuid,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "select exists (select 1 from events \
                         where aggregate_type = 'Account' and aggregate_id = $1)",
    )
    .bind(account.to_string())
    .fetch_one(tx)
    .await
}

/// What a revocation found.
pub enum Revoked {
    /// Revoked now, or earlier (revoking again changes nothing).
    At(DateTime<Utc>),
    NoSuchKey,
}

/// Revokes key `id` of the transaction's tenant, once.
pub(crate) async fn revoke(
    tx: &mut sqlx::PgConnection,
    caller: &Claims,
    id: Uuid,
) -> Result<Revoked, sqlx::Error> {
    let found: Option<(DateTime<Utc>,)> = sqlx::query_as(
        "with revoked as ( \
             update api_keys set revoked_at = now(), revoked_by = $2 \
              where id = $1 and revoked_at is null returning revoked_at) \
         select revoked_at from revoked \
         union all \
         select revoked_at from api_keys where id = $1 and revoked_at is not null",
    )
    .bind(id)
    .bind(caller.sub)
    .fetch_optional(tx)
    .await?;
    Ok(found.map_or(Revoked::NoSuchKey, |(at,)| Revoked::At(at)))
}

/// The actor a key acts as: its own id, with its roles and account.
pub(crate) fn claims_of_key(key: &crate::admission::AdmittedKey) -> Claims {
    Claims {
        sub: key.id,
        sid: key.id,
        tid: key.tenant_id,
        tenant: key.tenant_slug.clone(),
        email: String::new(),
        roles: Vec::new(),
        account_id: None,
        exp: key.expires_at.timestamp(),
        iat: 0,
        api_key: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admin() -> Claims {
        Claims {
            sub: Uuid::from_u128(1),
            sid: Uuid::from_u128(2),
            tid: Uuid::from_u128(3),
            tenant: "acme".into(),
            email: "a@acme.test".into(),
            roles: vec![Role::TenantAdmin],
            account_id: None,
            exp: 0,
            iat: 0,
            api_key: false,
        }
    }

    fn request(roles: Vec<Role>, account_id: Option<Uuid>, days: i64) -> KeyRequest {
        KeyRequest {
            name: "  ERP sync ".into(),
            roles,
            account_id,
            expires_at: now() + Duration::days(days),
        }
    }

    fn now() -> DateTime<Utc> {
        "2026-01-01T00:00:00Z".parse().unwrap()
    }

    fn code(error: DomainError) -> String {
        match error {
            DomainError::RuleViolated { code, .. } => code.as_str().to_owned(),
            DomainError::InvalidField { field, .. } => format!("field {field}"),
            DomainError::Forbidden(_) => "forbidden".into(),
            other => other.to_string(),
        }
    }

    #[test]
    fn a_tenant_admin_grants_a_key_with_sorted_roles_and_a_trimmed_name() {
        let grant = KeyGrant::decide(
            &admin(),
            request(vec![Role::Viewer, Role::Operator, Role::Viewer], None, 30),
            now(),
        )
        .unwrap();
        assert_eq!(grant.name, "ERP sync");
        assert_eq!(grant.roles, vec![Role::Operator, Role::Viewer]);
    }

    #[test]
    fn the_rules_refuse_what_they_should() {
        let account = Some(Uuid::from_u128(9));
        let refused =
            |caller: &Claims, req| code(KeyGrant::decide(caller, req, now()).unwrap_err());
        let mut manager = admin();
        manager.roles = vec![Role::Manager];
        assert_eq!(
            refused(&manager, request(vec![Role::Viewer], None, 1)),
            "forbidden"
        );
        let mut key = admin();
        key.api_key = true;
        assert_eq!(
            refused(&key, request(vec![Role::Viewer], None, 1)),
            "forbidden"
        );
        assert_eq!(refused(&admin(), request(vec![], None, 1)), "field roles");
        assert_eq!(
            refused(
                &admin(),
                request(vec![Role::Partner, Role::Viewer], account, 1)
            ),
            "field roles"
        );
        assert_eq!(
            refused(&admin(), request(vec![Role::Partner], None, 1)),
            "partner_needs_account"
        );
        assert_eq!(
            refused(&admin(), request(vec![Role::Viewer], account, 1)),
            "not_a_partner"
        );
        assert_eq!(
            refused(&admin(), request(vec![Role::Viewer], None, 0)),
            "key_expiry_out_of_range"
        );
        assert_eq!(
            refused(
                &admin(),
                request(vec![Role::Viewer], None, MAX_KEY_LIFETIME_DAYS + 1)
            ),
            "key_expiry_out_of_range"
        );
        let mut blank = request(vec![Role::Viewer], None, 1);
        blank.name = "   ".into();
        assert_eq!(refused(&admin(), blank), "field name");
    }

    #[test]
    fn a_new_secret_names_its_key_and_hashes_to_what_is_stored() {
        let id = Uuid::new_v4();
        let (secret, hash) = new_secret(id);
        assert!(is_api_key(&secret));
        assert_eq!(parse_key(&secret), Some((id, hash)));
        assert!(hash_matches(&hash, &hash));
        assert!(!hash_matches(&hash, &[0; 32]));
        assert_ne!(new_secret(id).0, secret);
    }

    #[test]
    fn malformed_keys_are_not_parsed() {
        let id = Uuid::new_v4().simple().to_string();
        let good = format!("{API_KEY_PREFIX}{id}{}", "a".repeat(SECRET_HEX_CHARS));
        assert!(parse_key(&good).is_some());
        for bad in [
            "b2bk_".to_owned(),
            format!("{API_KEY_PREFIX}{id}{}", "a".repeat(SECRET_HEX_CHARS - 1)),
            format!("{API_KEY_PREFIX}{id}{}", "A".repeat(SECRET_HEX_CHARS)),
            format!("{API_KEY_PREFIX}{id}{}", "g".repeat(SECRET_HEX_CHARS)),
            format!("b2bx_{id}{}", "a".repeat(SECRET_HEX_CHARS)),
        ] {
            assert_eq!(parse_key(&bad), None, "{bad}");
        }
    }
}
