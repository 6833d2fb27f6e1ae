//! `read.accounts`: one row per account, as the Account events describe it.
use aggregates::account::{Account, AccountEvent, AccountStatus};
use aggregates::Text;
use async_trait::async_trait;
use event_store::StoredEvent;
use sqlx::postgres::PgArguments;
use sqlx::query::Query;
use sqlx::{PgConnection, Postgres};
use uuid::Uuid;

use crate::read_model::ReadModel;
use crate::stamp::Stamp;
use crate::ProjectionError;

/// Maintains `read.accounts` from Account events. Replayable: see [`Projection`].
#[derive(Debug, Clone, Copy, Default)]
pub struct AccountsProjection;

#[async_trait]
impl ReadModel for AccountsProjection {
    const NAME: &'static str = "accounts";
    const TABLES: &'static [&'static str] = &["accounts"];
    type Aggregate = Account;

    async fn apply_change(
        &self,
        conn: &mut PgConnection,
        stamp: &Stamp,
        event: &StoredEvent,
        change: AccountEvent,
    ) -> Result<(), ProjectionError> {
        match change {
            AccountEvent::AccountOpened {
                name,
                legal_name,
                country,
                billing_email,
                currency,
                tier,
            } => {
                let opened = Opened {
                    name: name.as_str(),
                    legal_name: legal_name.as_str(),
                    country: country.as_str(),
                    billing_email: billing_email.as_str(),
                    currency: currency.as_str(),
                    tier: tier.as_str(),
                };
                open(conn, stamp, event.tenant_id, &opened).await
            }
            change => update(conn, stamp, &change, event).await,
        }
    }
}

struct Opened<'a> {
    name: &'a str,
    legal_name: &'a str,
    country: &'a str,
    billing_email: &'a str,
    currency: &'a str,
    tier: &'a str,
}

/// Opening (re)writes the whole row: when a rebuild replays a stream over rows that are still
/// there, the result is the same as on an empty table.
async fn open(
    conn: &mut PgConnection,
    stamp: &Stamp,
    tenant_id: Uuid,
    opened: &Opened<'_>,
) -> Result<(), ProjectionError> {
    sqlx::query(
        "insert into accounts (id, tenant_id, name, legal_name, country, billing_email, \
             currency, tier, status, version, opened_at, opened_by, updated_at, updated_by) \
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $11, $12) \
         on conflict (id) do update set tenant_id = excluded.tenant_id, name = excluded.name, \
             legal_name = excluded.legal_name, country = excluded.country, \
             billing_email = excluded.billing_email, currency = excluded.currency, \
             tier = excluded.tier, status = excluded.status, credit_limit = null, \
             api_quota_per_minute = null, status_reason = null, active_contracts = 0, \
             version = excluded.version, opened_at = excluded.opened_at, \
             opened_by = excluded.opened_by, updated_at = excluded.updated_at, \
             updated_by = excluded.updated_by",
    )
    .bind(stamp.id)
    .bind(tenant_id)
    .bind(opened.name)
    .bind(opened.legal_name)
    .bind(opened.country)
    .bind(opened.billing_email)
    .bind(opened.currency)
    .bind(opened.tier)
    .bind(AccountStatus::Prospect.as_str())
    .bind(stamp.version)
    .bind(stamp.at)
    .bind(stamp.by)
    .execute(conn)
    .await?;
    Ok(())
}

/// An update of the given columns that also stamps the row; `$1`..`$4` are the stamp, the
/// change's own values start at `$5`.
macro_rules! stamped {
    ($set:literal) => {
        concat!(
            "update accounts set ",
            $set,
            ", version = $2, updated_at = $3, updated_by = $4 where id = $1"
        )
    };
}

async fn update(
    conn: &mut PgConnection,
    stamp: &Stamp,
    change: &AccountEvent,
    event: &StoredEvent,
) -> Result<(), ProjectionError> {
    let done = change_query(stamp, change, event)?.execute(conn).await?;
    // No row means the account was never opened here, or belongs to another tenant: either way
    // the read model would silently diverge if we carried on.
    if done.rows_affected() != 1 {
        return Err(ProjectionError::inconsistent(event, "no such account row"));
    }
    Ok(())
}

type PgQuery<'q> = Query<'q, Postgres, PgArguments>;

fn change_query<'q>(
    stamp: &Stamp,
    change: &'q AccountEvent,
    event: &StoredEvent,
) -> Result<PgQuery<'q>, ProjectionError> {
    use AccountEvent as E;
    let query = match change {
        // `apply` routes opening to `open`; never let it become a silent no-op update.
        E::AccountOpened { .. } => {
            return Err(ProjectionError::inconsistent(
                event,
                "opening is not an update",
            ))
        }
        E::AccountDetailsUpdated {
            name,
            legal_name,
            country,
            billing_email,
        } => stamped_query(
            stamped!(
                "name = coalesce($5, name), legal_name = coalesce($6, legal_name), \
                 country = coalesce($7, country), billing_email = coalesce($8, billing_email)"
            ),
            stamp,
        )
        .bind(name.as_ref().map(Text::as_str))
        .bind(legal_name.as_ref().map(Text::as_str))
        .bind(country.as_ref().map(|c| c.as_str()))
        .bind(billing_email.as_ref().map(|e| e.as_str())),
        E::AccountTierChanged { to, .. } => {
            stamped_query(stamped!("tier = $5"), stamp).bind(to.as_str())
        }
        E::CreditLimitSet { amount, .. } => {
            stamped_query(stamped!("credit_limit = $5"), stamp).bind(*amount)
        }
        E::ApiQuotaSet {
            requests_per_minute,
        } => {
            let quota = i32::try_from(*requests_per_minute)
                .map_err(|_| ProjectionError::inconsistent(event, "API quota out of range"))?;
            stamped_query(stamped!("api_quota_per_minute = $5"), stamp).bind(quota)
        }
        E::AccountSuspended { reason } => status(stamp, AccountStatus::Suspended, Some(reason)),
        E::AccountClosed { reason } => status(stamp, AccountStatus::Closed, Some(reason)),
        E::AccountReinstated {} | E::AccountActivated { .. } => {
            status(stamp, AccountStatus::Active, None)
        }
        E::ContractActivatedOnAccount { .. } => {
            stamped_query(stamped!("active_contracts = active_contracts + 1"), stamp)
        }
        E::ContractEndedOnAccount { .. } => {
            stamped_query(stamped!("active_contracts = active_contracts - 1"), stamp)
        }
    };
    Ok(query)
}

fn stamped_query<'q>(sql: &'static str, stamp: &Stamp) -> PgQuery<'q> {
    sqlx::query(sql)
        .bind(stamp.id)
        .bind(stamp.version)
        .bind(stamp.at)
        .bind(stamp.by)
}

/// A status change; the reason belongs to suspension and closure only, so any other status
/// clears it.
fn status<'q>(stamp: &Stamp, to: AccountStatus, reason: Option<&'q Text>) -> PgQuery<'q> {
    stamped_query(stamped!("status = $5, status_reason = $6"), stamp)
        .bind(to.as_str())
        .bind(reason.map(Text::as_str))
}
