//! `read.contracts` and `read.contract_versions`: one row per contract and one per contract
//! version (the draft is version 1, each amendment the next).
use aggregates::contract::{Contract, ContractEvent, Party};
use aggregates::{CurrencyCode, Text};
use async_trait::async_trait;
use chrono::NaiveDate;
use event_store::StoredEvent;
use rust_decimal::Decimal;
use sqlx::postgres::PgArguments;
use sqlx::query::Query;
use sqlx::{PgConnection, Postgres};
use uuid::Uuid;

use crate::read_model::ReadModel;
use crate::stamp::{one_row, Stamp};
use crate::ProjectionError;

/// Maintains `read.contracts` and `read.contract_versions` from Contract events. Replayable:
/// see [`Projection`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ContractsProjection;

#[async_trait]
impl ReadModel for ContractsProjection {
    const NAME: &'static str = "contracts";
    const TABLES: &'static [&'static str] = &["contracts", "contract_versions"];
    type Aggregate = Contract;

    async fn apply_change(
        &self,
        conn: &mut PgConnection,
        stamp: &Stamp,
        event: &StoredEvent,
        change: ContractEvent,
    ) -> Result<(), ProjectionError> {
        use ContractEvent as E;
        if let Some(drafted) = Drafted::of(&change) {
            return draft(conn, stamp, &drafted).await;
        }
        let done = change_query(stamp, &change).execute(&mut *conn).await?;
        one_row(done, event, "contract")?;
        if let E::ContractAmended { version, .. } = change {
            record_version(conn, stamp, version).await?;
        }
        Ok(())
    }
}

type PgQuery<'q> = Query<'q, Postgres, PgArguments>;

/// What both kinds of drafting say.
struct Drafted<'a> {
    account_id: Uuid,
    quote_id: Option<Uuid>,
    title: &'a Text,
    value: Decimal,
    currency: &'a CurrencyCode,
    start_date: NaiveDate,
    end_date: NaiveDate,
    terms: &'a Text,
}

impl<'a> Drafted<'a> {
    fn of(event: &'a ContractEvent) -> Option<Self> {
        match event {
            ContractEvent::ContractDrafted {
                account_id,
                title,
                value,
                currency,
                start_date,
                end_date,
                terms,
            } => Some(Self {
                account_id: *account_id,
                quote_id: None,
                title,
                value: *value,
                currency,
                start_date: *start_date,
                end_date: *end_date,
                terms,
            }),
            ContractEvent::ContractDraftedFromQuote {
                quote_id,
                account_id,
                title,
                value,
                currency,
                start_date,
                end_date,
                terms,
                ..
            } => Some(Self {
                account_id: *account_id,
                quote_id: Some(*quote_id),
                title,
                value: *value,
                currency,
                start_date: *start_date,
                end_date: *end_date,
                terms,
            }),
            _ => None,
        }
    }
}

/// Drafting (re)writes the row and its versions, so a rebuild over existing rows ends where
/// one over empty tables would.
async fn draft(
    conn: &mut PgConnection,
    stamp: &Stamp,
    drafted: &Drafted<'_>,
) -> Result<(), ProjectionError> {
    sqlx::query(
        "insert into contracts (id, tenant_id, account_id, quote_id, title, status, value, \
             currency, start_date, end_date, terms, version, term, created_at, created_by, \
             updated_at, updated_by, stream_version) \
         values ($1, $5, $6, $7, $8, 'Draft', $9, $10, $11, $12, $13, 1, 1, $3, $4, $3, $4, $2) \
         on conflict (id) do update set tenant_id = excluded.tenant_id, \
             account_id = excluded.account_id, quote_id = excluded.quote_id, \
             title = excluded.title, status = excluded.status, value = excluded.value, \
             currency = excluded.currency, start_date = excluded.start_date, \
             end_date = excluded.end_date, terms = excluded.terms, version = 1, term = 1, \
             customer_signatory = null, customer_signatory_email = null, \
             customer_signed_at = null, vendor_signatory = null, vendor_signatory_email = null, \
             vendor_signed_at = null, approval_id = null, activated_on = null, \
             terminated_reason = null, effective_date = null, expired_on = null, \
             cancelled_reason = null, \
             created_at = excluded.created_at, created_by = excluded.created_by, \
             updated_at = excluded.updated_at, updated_by = excluded.updated_by, \
             stream_version = excluded.stream_version",
    )
    .bind(stamp.id)
    .bind(stamp.version)
    .bind(stamp.at)
    .bind(stamp.by)
    .bind(stamp.tenant_id)
    .bind(drafted.account_id)
    .bind(drafted.quote_id)
    .bind(drafted.title.as_str())
    .bind(drafted.value)
    .bind(drafted.currency.as_str())
    .bind(drafted.start_date)
    .bind(drafted.end_date)
    .bind(drafted.terms.as_str())
    .execute(&mut *conn)
    .await?;
    sqlx::query("delete from contract_versions where contract_id = $1")
        .bind(stamp.id)
        .execute(&mut *conn)
        .await?;
    record_version(conn, stamp, 1).await
}

/// Copies the contract's terms and value, as they now stand, into the version's row.
async fn record_version(
    conn: &mut PgConnection,
    stamp: &Stamp,
    version: u32,
) -> Result<(), ProjectionError> {
    sqlx::query(
        "insert into contract_versions (contract_id, version, tenant_id, terms, value, \
             amended_at, amended_by) \
         select id, $2, tenant_id, terms, value, $3, $4 from contracts where id = $1",
    )
    .bind(stamp.id)
    .bind(i32::try_from(version).unwrap_or(i32::MAX))
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
            "update contracts set ",
            $set,
            ", stream_version = $2, updated_at = $3, updated_by = $4 where id = $1"
        )
    };
}

fn change_query<'q>(stamp: &Stamp, change: &'q ContractEvent) -> PgQuery<'q> {
    use ContractEvent as E;
    let q = |sql| {
        sqlx::query(sql)
            .bind(stamp.id)
            .bind(stamp.version)
            .bind(stamp.at)
            .bind(stamp.by)
    };
    match change {
        E::ContractAmended {
            version,
            terms,
            value,
        } => q(stamped!(
            "status = 'Negotiation', version = $5, terms = coalesce($6, terms), \
             value = coalesce($7, value)"
        ))
        .bind(i32::try_from(*version).unwrap_or(i32::MAX))
        .bind(terms.as_ref().map(Text::as_str))
        .bind(value),
        E::ContractSubmitted { .. } => q(stamped!("status = 'PendingApproval'")),
        E::ContractApproved { approval_id, .. } => {
            q(stamped!("status = 'Approved', approval_id = $5")).bind(approval_id)
        }
        E::ContractRejected { approval_id, .. } => {
            q(stamped!("status = 'Negotiation', approval_id = $5")).bind(approval_id)
        }
        E::ContractSigned {
            party,
            signatory_name,
            signatory_email,
            signed_at,
        } => q(match party {
            Party::Customer => stamped!(
                "customer_signatory = $5, customer_signatory_email = $6, customer_signed_at = $7"
            ),
            Party::Vendor => stamped!(
                "vendor_signatory = $5, vendor_signatory_email = $6, vendor_signed_at = $7"
            ),
        })
        .bind(signatory_name.as_str())
        .bind(signatory_email.as_str())
        .bind(signed_at),
        E::ContractActivated { activated_on, .. } => {
            q(stamped!("status = 'Active', activated_on = $5")).bind(activated_on)
        }
        E::ContractRenewed {
            term,
            new_end_date,
            new_value,
            ..
        } => q(stamped!(
            "status = 'Active', term = $5, end_date = $6, value = $7"
        ))
        .bind(i32::try_from(*term).unwrap_or(i32::MAX))
        .bind(new_end_date)
        .bind(new_value),
        E::ContractTerminated {
            reason,
            effective_date,
            ..
        } => q(stamped!(
            "status = 'Terminated', terminated_reason = $5, effective_date = $6"
        ))
        .bind(reason.as_str())
        .bind(effective_date),
        E::ContractExpired { end_date, .. } => {
            q(stamped!("status = 'Expired', expired_on = $5")).bind(end_date)
        }
        E::ContractCancelled { reason } => {
            q(stamped!("status = 'Cancelled', cancelled_reason = $5")).bind(reason.as_str())
        }
        // `apply` routes drafting to `draft`; matching no row makes a misroute an error.
        E::ContractDrafted { .. } | E::ContractDraftedFromQuote { .. } => {
            sqlx::query("update contracts set id = id where false")
        }
    }
}
