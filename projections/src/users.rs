//! `read.users`: one row per user, as the User events describe it. The password hash never
//! enters an event, so it never reaches this table either.
use aggregates::user::{User, UserEvent};
use aggregates::Role;
use async_trait::async_trait;
use event_store::StoredEvent;
use sqlx::postgres::PgArguments;
use sqlx::query::Query;
use sqlx::{PgConnection, Postgres};

use crate::read_model::ReadModel;
use crate::stamp::{one_row, Stamp};
use crate::ProjectionError;

/// Maintains `read.users` from User events. Replayable: see [`Projection`].
#[derive(Debug, Clone, Copy, Default)]
pub struct UsersProjection;

#[async_trait]
impl ReadModel for UsersProjection {
    const NAME: &'static str = "users";
    const TABLES: &'static [&'static str] = &["users"];
    type Aggregate = User;

    async fn apply_change(
        &self,
        conn: &mut PgConnection,
        stamp: &Stamp,
        event: &StoredEvent,
        change: UserEvent,
    ) -> Result<(), ProjectionError> {
        let done = change_query(stamp, &change).execute(conn).await?;
        one_row(done, event, "user")
    }
}

type PgQuery<'q> = Query<'q, Postgres, PgArguments>;

/// An update of the given columns that also stamps the row; `$1`..`$4` are the stamp, the
/// change's own values start at `$5`.
macro_rules! stamped {
    ($set:literal) => {
        concat!(
            "update users set ",
            $set,
            ", version = $2, updated_at = $3, updated_by = $4 where id = $1"
        )
    };
}

fn change_query<'q>(stamp: &Stamp, change: &'q UserEvent) -> PgQuery<'q> {
    use UserEvent as E;
    match change {
        E::UserRegistered {
            email,
            display_name,
            roles,
            account_id,
            ..
        } => register(
            stamp,
            email.as_str(),
            display_name.as_str(),
            roles,
            *account_id,
        ),
        E::UserRolesChanged { to, account_id, .. } => {
            stamped_query(stamped!("roles = $5, account_id = $6"), stamp)
                .bind(role_names(to))
                .bind(*account_id)
        }
        E::PartnerAccountLinked { account_id, .. } => {
            stamped_query(stamped!("account_id = $5"), stamp).bind(*account_id)
        }
        E::ApprovalLimitSet { amount, currency } => stamped_query(
            stamped!("approval_limit = $5, approval_limit_currency = $6"),
            stamp,
        )
        .bind(*amount)
        .bind(currency.as_str()),
        E::UserEmailChanged { to, .. } => {
            stamped_query(stamped!("email = $5"), stamp).bind(to.as_str())
        }
        // Nothing of a password is shown; the row only records that the user changed.
        E::PasswordChanged { .. } => stamped_query(stamped!("active = active"), stamp),
        E::UserDeactivated { reason } => {
            stamped_query(stamped!("active = false, deactivation_reason = $5"), stamp)
                .bind(reason.as_str())
        }
        E::UserReactivated {} => {
            stamped_query(stamped!("active = true, deactivation_reason = null"), stamp)
        }
    }
}

/// Registration (re)writes the whole row: when a rebuild replays a stream over rows that are
/// still there, the result is the same as on an empty table.
fn register<'q>(
    stamp: &Stamp,
    email: &'q str,
    display_name: &'q str,
    roles: &[Role],
    account_id: Option<uuid::Uuid>,
) -> PgQuery<'q> {
    sqlx::query(
        "insert into users (id, tenant_id, email, display_name, roles, account_id, active, \
             version, registered_at, registered_by, updated_at, updated_by) \
         values ($1, $5, $6, $7, $8, $9, true, $2, $3, $4, $3, $4) \
         on conflict (id) do update set tenant_id = excluded.tenant_id, email = excluded.email, \
             display_name = excluded.display_name, roles = excluded.roles, \
             account_id = excluded.account_id, approval_limit = null, \
             approval_limit_currency = null, active = true, deactivation_reason = null, \
             version = excluded.version, registered_at = excluded.registered_at, \
             registered_by = excluded.registered_by, updated_at = excluded.updated_at, \
             updated_by = excluded.updated_by",
    )
    .bind(stamp.id)
    .bind(stamp.version)
    .bind(stamp.at)
    .bind(stamp.by)
    .bind(stamp.tenant_id)
    .bind(email)
    .bind(display_name)
    .bind(role_names(roles))
    .bind(account_id)
}

fn stamped_query<'q>(sql: &'static str, stamp: &Stamp) -> PgQuery<'q> {
    sqlx::query(sql)
        .bind(stamp.id)
        .bind(stamp.version)
        .bind(stamp.at)
        .bind(stamp.by)
}

fn role_names(roles: &[Role]) -> Vec<&'static str> {
    roles.iter().copied().map(Role::as_str).collect()
}
