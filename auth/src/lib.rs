//! Identity for both APIs: passwords (argon2id), access tokens (JWT, HS256, short-lived),
//! sessions with rotating refresh tokens, sign-in lockout, and admission of each request
//! (live session or API key, current roles, rate limits), and two-factor sign-in (TOTP). Everything that must hold across replicas
//! lives in Postgres; nothing here is in-process state.
#![forbid(unsafe_code)]

mod admission;
pub mod api_keys;
mod identity;
mod lockout;
mod passwords;
mod sessions;
mod throttle;
mod tokens;
pub mod totp;

pub use admission::RequestLimit;
pub use identity::{
    Confirmed, Enrollee, Enrolment, Identity, IdentityPolicy, SignIn, Tokens, MAX_EMAIL_CHARS,
    MAX_SLUG_CHARS,
};
pub use passwords::{check_password, hash_new_password, MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS};
pub use tokens::{bearer_token, Claims, TokenKeys};

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("the access token is missing, expired or invalid, or its session has ended")]
    InvalidToken,
    #[error("unknown tenant, e-mail or password")]
    InvalidCredentials,
    #[error("the mfa_token is unknown, expired or used, or the code is wrong or already used")]
    InvalidSecondFactor,
    #[error("the refresh token is unknown, expired or already used; sign in again")]
    InvalidRefreshToken,
    #[error("{field}: {message}")]
    InvalidInput {
        field: &'static str,
        message: String,
    },
    #[error("too many failed sign-ins for this e-mail; try again in {retry_after} seconds")]
    SignInLocked { retry_after: u32 },
    #[error("{limit}; try again in {retry_after} seconds")]
    TooManyRequests {
        limit: RequestLimit,
        retry_after: u32,
    },
    #[error("too many passwords are being checked at once; try again in {retry_after} seconds")]
    SignInsBusy { retry_after: u32 },
    #[error("more than {limit} sign-ins this minute from this address; try again in {retry_after} seconds")]
    SignInsFromAddress { limit: u32, retry_after: u32 },
    #[error("could not hash or verify the password")]
    Hashing,
    #[error("the password must be {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters")]
    WeakPassword,
    /// A rule of the identity domain refused (API key grants, two-factor enrolment).
    #[error(transparent)]
    Refused(#[from] aggregates::DomainError),
    #[error("a stored role is invalid: {0}")]
    StoredRole(String),
    #[error("identity store: {0}")]
    Database(#[from] sqlx::Error),
}

impl AuthError {
    /// Seconds a client should wait before trying again, for the refusals that have one.
    pub fn retry_after(&self) -> Option<u32> {
        match self {
            Self::SignInLocked { retry_after }
            | Self::SignInsBusy { retry_after }
            | Self::SignInsFromAddress { retry_after, .. }
            | Self::TooManyRequests { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }
}
