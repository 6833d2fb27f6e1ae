//! Admission of one request, in one statement: the session is live, the user active and in the
//! token's tenant, and the request is counted against the user's per-minute limit and, for a
//! Partner, against the account's API quota. Counting happens in Postgres so every replica of
//! both APIs shares the same counters.
use sqlx::PgPool;
use uuid::Uuid;

use crate::sessions::parse_roles;
use crate::{AuthError, Claims};

/// Which limit a refused request ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestLimit {
    /// Requests per minute for one user.
    User(u32),
    /// Requests per minute shared by an account's Partner users.
    AccountQuota(u32),
}

impl std::fmt::Display for RequestLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::User(limit) => write!(f, "more than {limit} requests this minute by this user"),
            Self::AccountQuota(quota) => write!(
                f,
                "the account's API quota of {quota} requests per minute is used up"
            ),
        }
    }
}

const ADMIT: &str = "\
with caller as (
    select c.email, c.roles, c.account_id, c.tenant_id, 'Partner' = any(c.roles) as partner
      from sessions s join user_credentials c on c.user_id = s.user_id
     where s.id = $1 and s.user_id = $2 and c.tenant_id = $3
       and s.revoked_at is null and s.expires_at > now() and c.active
), this_minute as (
    select date_trunc('minute', now()) as started
), subjects as (
    select 'user' as kind, $2::uuid as id from caller
    union all
    select 'account', account_id from caller where partner and account_id is not null
), counted as (
    insert into request_counts as r (subject_kind, subject_id, window_start, requests)
    select kind, id, started, 1 from subjects, this_minute
    on conflict (subject_kind, subject_id) do update
       set requests = case when r.window_start = excluded.window_start
                           then r.requests + 1 else 1 end,
           window_start = excluded.window_start
    returning subject_kind, requests
)
select caller.email, caller.roles, caller.account_id,
       (select requests from counted where subject_kind = 'user') as user_requests,
       (select requests from counted where subject_kind = 'account') as account_requests,
       case when partner then account_api_quota(caller.tenant_id, caller.account_id) end
           as account_quota,
       greatest(1, ceil(extract(epoch from
           (select started from this_minute) + interval '1 minute' - now())))::integer
           as retry_after
  from caller";

#[derive(sqlx::FromRow)]
pub(crate) struct Admitted {
    email: String,
    roles: Vec<String>,
    account_id: Option<Uuid>,
    user_requests: Option<i32>,
    account_requests: Option<i32>,
    account_quota: Option<i32>,
    retry_after: i32,
}

/// `None` when the session has ended or the user is no longer active.
pub(crate) async fn admit(pool: &PgPool, claims: &Claims) -> Result<Option<Admitted>, AuthError> {
    let admitted = sqlx::query_as(ADMIT)
        .bind(claims.sid)
        .bind(claims.sub)
        .bind(claims.tid)
        .fetch_optional(pool)
        .await?;
    Ok(admitted)
}

impl Admitted {
    pub(crate) fn check_limits(&self, per_user: u32) -> Result<(), AuthError> {
        let over = |count: Option<i32>, limit: u32| count.is_some_and(|n| n.unsigned_abs() > limit);
        let limit = if over(self.user_requests, per_user) {
            Some(RequestLimit::User(per_user))
        } else {
            self.account_quota
                .map(i32::unsigned_abs)
                .filter(|quota| over(self.account_requests, *quota))
                .map(RequestLimit::AccountQuota)
        };
        match limit {
            Some(limit) => Err(AuthError::TooManyRequests {
                limit,
                retry_after: self.retry_after.unsigned_abs(),
            }),
            None => Ok(()),
        }
    }

    pub(crate) fn into_claims(self, token: Claims) -> Result<Claims, AuthError> {
        Ok(Claims {
            email: self.email,
            roles: parse_roles(&self.roles)?,
            account_id: self.account_id,
            ..token
        })
    }
}
