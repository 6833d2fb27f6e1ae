//! `read.accounts`: one row per account, as the Account events describe it.
use aggregates::account::{Account, AccountEvent, AccountStatus};
use aggregates::{Text, ERASED};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use uuid::Uuid;

use crate::read_model::{existing, Inconsistent, ReadModel};
use crate::rows::Row;
use crate::stamp::Stamp;

/// Maintains `read.accounts` from Account events. Replayable: see [`ReadModel`].
#[derive(Debug, Clone, Copy, Default)]
pub struct AccountsProjection;

/// A row of `read.accounts`.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub(crate) struct AccountRow {
    id: Uuid,
    tenant_id: Uuid,
    name: String,
    legal_name: String,
    country: String,
    billing_email: String,
    currency: String,
    tier: String,
    status: String,
    credit_limit: Option<Decimal>,
    api_quota_per_minute: Option<i32>,
    status_reason: Option<String>,
    active_contracts: i32,
    version: i64,
    opened_at: DateTime<Utc>,
    opened_by: Option<Uuid>,
    updated_at: DateTime<Utc>,
    updated_by: Option<Uuid>,
}

impl Row for AccountRow {
    const TABLE: &'static str = "accounts";
    const ENTITY: &'static str = "id";
    const KEY: &'static str = "id";
    type Key = ();

    fn key(&self) {}
}

impl ReadModel for AccountsProjection {
    const NAME: &'static str = "accounts";
    type Aggregate = Account;
    type Entity = Option<AccountRow>;

    fn fold(
        row: &mut Option<AccountRow>,
        stamp: &Stamp,
        change: AccountEvent,
    ) -> Result<(), Inconsistent> {
        use AccountEvent as E;
        if let E::AccountOpened {
            name,
            legal_name,
            country,
            billing_email,
            currency,
            tier,
        } = &change
        {
            *row = Some(AccountRow {
                id: stamp.id,
                tenant_id: stamp.tenant_id,
                name: name.as_str().to_owned(),
                legal_name: legal_name.as_str().to_owned(),
                country: country.as_str().to_owned(),
                billing_email: billing_email.as_str().to_owned(),
                currency: currency.as_str().to_owned(),
                tier: tier.as_str().to_owned(),
                status: AccountStatus::Prospect.as_str().to_owned(),
                credit_limit: None,
                api_quota_per_minute: None,
                status_reason: None,
                active_contracts: 0,
                version: stamp.version,
                opened_at: stamp.at,
                opened_by: stamp.by,
                updated_at: stamp.at,
                updated_by: stamp.by,
            });
            return Ok(());
        }
        let account = existing(row, "no such account row")?;
        match change {
            E::AccountOpened { .. } => unreachable!("handled above"),
            E::AccountDetailsUpdated {
                name,
                legal_name,
                country,
                billing_email,
            } => {
                replace(&mut account.name, name.as_ref().map(Text::as_str));
                replace(
                    &mut account.legal_name,
                    legal_name.as_ref().map(Text::as_str),
                );
                replace(&mut account.country, country.as_ref().map(|c| c.as_str()));
                replace(
                    &mut account.billing_email,
                    billing_email.as_ref().map(|e| e.as_str()),
                );
            }
            E::AccountTierChanged { to, .. } => account.tier = to.as_str().to_owned(),
            E::CreditLimitSet { amount, .. } => account.credit_limit = Some(amount),
            E::ApiQuotaSet {
                requests_per_minute,
            } => {
                let quota = i32::try_from(requests_per_minute)
                    .map_err(|_| Inconsistent("API quota out of range"))?;
                account.api_quota_per_minute = Some(quota);
            }
            E::AccountSuspended { reason } => {
                account.status_to(AccountStatus::Suspended, Some(&reason))
            }
            E::AccountClosed { reason } => account.status_to(AccountStatus::Closed, Some(&reason)),
            E::AccountReinstated {} | E::AccountActivated { .. } => {
                account.status_to(AccountStatus::Active, None)
            }
            // Rows folded before the keys were destroyed hold the plain text: erase it. A
            // rebuild reads these fields erased already.
            E::AccountContactDataForgotten {} => {
                account.legal_name = ERASED.to_owned();
                account.billing_email = ERASED.to_owned();
            }
            E::ContractActivatedOnAccount { .. } => account.active_contracts += 1,
            E::ContractEndedOnAccount { .. } => account.active_contracts -= 1,
        }
        account.version = stamp.version;
        account.updated_at = stamp.at;
        account.updated_by = stamp.by;
        Ok(())
    }
}

impl AccountRow {
    /// The reason belongs to suspension and closure only, so any other status clears it.
    fn status_to(&mut self, to: AccountStatus, reason: Option<&Text>) {
        self.status = to.as_str().to_owned();
        self.status_reason = reason.map(|r| r.as_str().to_owned());
    }
}

/// A detail the event changes; `None` leaves it as it is.
fn replace(column: &mut String, to: Option<&str>) {
    if let Some(to) = to {
        to.clone_into(column);
    }
}
