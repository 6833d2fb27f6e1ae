//! `read.users`: one row per user, as the User events describe it. The password hash never
//! enters an event, so it never reaches this table either.
use aggregates::user::{User, UserEvent};
use aggregates::{Role, ERASED};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use uuid::Uuid;

use crate::read_model::{existing, Inconsistent, ReadModel};
use crate::rows::Row;
use crate::stamp::Stamp;

/// Maintains `read.users` from User events. Replayable: see [`ReadModel`].
#[derive(Debug, Clone, Copy, Default)]
pub struct UsersProjection;

/// A row of `read.users`.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub(crate) struct UserRow {
    id: Uuid,
    tenant_id: Uuid,
    email: String,
    display_name: String,
    roles: Vec<String>,
    account_id: Option<Uuid>,
    approval_limit: Option<Decimal>,
    approval_limit_currency: Option<String>,
    active: bool,
    deactivation_reason: Option<String>,
    version: i64,
    registered_at: DateTime<Utc>,
    registered_by: Option<Uuid>,
    updated_at: DateTime<Utc>,
    updated_by: Option<Uuid>,
}

impl Row for UserRow {
    const TABLE: &'static str = "users";
    const ENTITY: &'static str = "id";
    const KEY: &'static str = "id";
    type Key = ();

    fn key(&self) {}
}

impl ReadModel for UsersProjection {
    const NAME: &'static str = "users";
    type Aggregate = User;
    type Entity = Option<UserRow>;

    fn fold(
        row: &mut Option<UserRow>,
        stamp: &Stamp,
        change: UserEvent,
    ) -> Result<(), Inconsistent> {
        use UserEvent as E;
        if let E::UserRegistered {
            email,
            display_name,
            roles,
            account_id,
            ..
        } = &change
        {
            *row = Some(UserRow {
                id: stamp.id,
                tenant_id: stamp.tenant_id,
                email: email.as_str().to_owned(),
                display_name: display_name.as_str().to_owned(),
                roles: role_names(roles),
                account_id: *account_id,
                approval_limit: None,
                approval_limit_currency: None,
                active: true,
                deactivation_reason: None,
                version: stamp.version,
                registered_at: stamp.at,
                registered_by: stamp.by,
                updated_at: stamp.at,
                updated_by: stamp.by,
            });
            return Ok(());
        }
        let user = existing(row, "no such user row")?;
        match change {
            E::UserRegistered { .. } => unreachable!("handled above"),
            E::UserRolesChanged { to, account_id, .. } => {
                user.roles = role_names(&to);
                user.account_id = account_id;
            }
            E::PartnerAccountLinked { account_id, .. } => user.account_id = Some(account_id),
            E::ApprovalLimitSet { amount, currency } => {
                user.approval_limit = Some(amount);
                user.approval_limit_currency = Some(currency.as_str().to_owned());
            }
            E::UserEmailChanged { to, .. } => user.email = to.as_str().to_owned(),
            // Nothing of a password is shown; the row only records that the user changed.
            E::PasswordChanged { .. } => {}
            E::UserDeactivated { reason } => {
                user.active = false;
                user.deactivation_reason = Some(reason.as_str().to_owned());
            }
            E::UserReactivated {} => {
                user.active = true;
                user.deactivation_reason = None;
            }
            // Rows folded before the keys were destroyed hold the plain text: erase it. A
            // rebuild reads these fields erased already.
            E::UserForgotten {} => {
                user.email = ERASED.to_owned();
                user.display_name = ERASED.to_owned();
            }
        }
        user.version = stamp.version;
        user.updated_at = stamp.at;
        user.updated_by = stamp.by;
        Ok(())
    }
}

fn role_names(roles: &[Role]) -> Vec<String> {
    roles.iter().map(|role| role.as_str().to_owned()).collect()
}
