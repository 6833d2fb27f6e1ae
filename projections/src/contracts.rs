//! `read.contracts` and `read.contract_versions`: one row per contract and one per contract
//! version (the draft is version 1, each amendment the next).
use aggregates::account::Account;
use aggregates::contract::{Contract, ContractEvent, Party};
use aggregates::user::User;
use aggregates::{CurrencyCode, Text, ERASED};
use chrono::{DateTime, NaiveDate, Utc};
use cqrs_es::Aggregate;
use event_store::StoredEvent;
use rust_decimal::Decimal;
use serde::Serialize;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::read_model::{existing, Inconsistent, ReadModel};
use crate::rows::{stored, Row, WithChildren};
use crate::stamp::Stamp;
use crate::{Projection, ProjectionError};

/// Maintains `read.contracts` and `read.contract_versions` from Contract events. Replayable:
/// see [`ReadModel`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ContractsProjection;

/// A row of `read.contracts`.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub(crate) struct ContractRow {
    id: Uuid,
    tenant_id: Uuid,
    account_id: Uuid,
    quote_id: Option<Uuid>,
    title: String,
    status: String,
    value: Decimal,
    currency: String,
    start_date: NaiveDate,
    end_date: NaiveDate,
    terms: String,
    version: i32,
    term: i32,
    customer_signatory: Option<String>,
    customer_signatory_email: Option<String>,
    customer_signed_at: Option<DateTime<Utc>>,
    vendor_signatory: Option<String>,
    vendor_signatory_email: Option<String>,
    vendor_signed_at: Option<DateTime<Utc>>,
    /// The user who signed for the vendor, when a person did: the vendor signatory is then
    /// that user's personal data (else the account's, as the customer's is).
    vendor_signed_by: Option<Uuid>,
    approval_id: Option<Uuid>,
    activated_on: Option<NaiveDate>,
    terminated_reason: Option<String>,
    effective_date: Option<NaiveDate>,
    expired_on: Option<NaiveDate>,
    created_at: DateTime<Utc>,
    created_by: Option<Uuid>,
    updated_at: DateTime<Utc>,
    updated_by: Option<Uuid>,
    stream_version: i64,
    cancelled_reason: Option<String>,
}

impl Row for ContractRow {
    const TABLE: &'static str = "contracts";
    const ENTITY: &'static str = "id";
    const KEY: &'static str = "id";
    type Key = ();

    fn key(&self) {}
}

/// A row of `read.contract_versions`: the terms and value as they stood at that version.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub(crate) struct ContractVersionRow {
    contract_id: Uuid,
    version: i32,
    tenant_id: Uuid,
    terms: String,
    value: Decimal,
    amended_at: DateTime<Utc>,
    amended_by: Option<Uuid>,
}

impl Row for ContractVersionRow {
    const TABLE: &'static str = "contract_versions";
    const ENTITY: &'static str = "contract_id";
    const KEY: &'static str = "contract_id, version";
    type Key = i32;

    fn key(&self) -> i32 {
        self.version
    }
}

type ContractRows = WithChildren<ContractRow, ContractVersionRow>;

impl ReadModel for ContractsProjection {
    const NAME: &'static str = "contracts";
    type Aggregate = Contract;
    type Entity = ContractRows;

    fn fold(
        rows: &mut ContractRows,
        stamp: &Stamp,
        change: ContractEvent,
    ) -> Result<(), Inconsistent> {
        use ContractEvent as E;
        if let Some(drafted) = Drafted::of(&change) {
            rows.row = Some(drafted.row(stamp));
            rows.children.clear();
            return record_version(rows, stamp);
        }
        let contract = existing(&mut rows.row, "no such contract row")?;
        let amended = matches!(change, E::ContractAmended { .. });
        match change {
            E::ContractDrafted { .. } | E::ContractDraftedFromQuote { .. } => {
                unreachable!("handled above")
            }
            E::ContractAmended {
                version,
                terms,
                value,
            } => {
                contract.status = "Negotiation".to_owned();
                contract.version = i32::try_from(version).unwrap_or(i32::MAX);
                if let Some(terms) = terms {
                    contract.terms = terms.as_str().to_owned();
                }
                contract.value = value.unwrap_or(contract.value);
            }
            E::ContractSubmitted { .. } => contract.status = "PendingApproval".to_owned(),
            E::ContractApproved { approval_id, .. } => {
                contract.status = "Approved".to_owned();
                contract.approval_id = Some(approval_id);
            }
            E::ContractRejected { approval_id, .. } => {
                contract.status = "Negotiation".to_owned();
                contract.approval_id = Some(approval_id);
            }
            E::ContractSigned {
                party,
                signatory_name,
                signatory_email,
                signed_at,
            } => {
                let (name, email, at) = match party {
                    Party::Customer => (
                        &mut contract.customer_signatory,
                        &mut contract.customer_signatory_email,
                        &mut contract.customer_signed_at,
                    ),
                    Party::Vendor => (
                        &mut contract.vendor_signatory,
                        &mut contract.vendor_signatory_email,
                        &mut contract.vendor_signed_at,
                    ),
                };
                *name = Some(signatory_name.as_str().to_owned());
                *email = Some(signatory_email.as_str().to_owned());
                *at = Some(stored(signed_at));
                if party == Party::Vendor {
                    contract.vendor_signed_by = stamp.person;
                }
            }
            E::ContractActivated { activated_on, .. } => {
                contract.status = "Active".to_owned();
                contract.activated_on = Some(activated_on);
            }
            E::ContractRenewed {
                term,
                new_end_date,
                new_value,
                ..
            } => {
                contract.status = "Active".to_owned();
                contract.term = i32::try_from(term).unwrap_or(i32::MAX);
                contract.end_date = new_end_date;
                contract.value = new_value;
            }
            E::ContractTerminated {
                reason,
                effective_date,
                ..
            } => {
                contract.status = "Terminated".to_owned();
                contract.terminated_reason = Some(reason.as_str().to_owned());
                contract.effective_date = Some(effective_date);
            }
            E::ContractExpired { end_date, .. } => {
                contract.status = "Expired".to_owned();
                contract.expired_on = Some(end_date);
            }
            E::ContractCancelled { reason } => {
                contract.status = "Cancelled".to_owned();
                contract.cancelled_reason = Some(reason.as_str().to_owned());
            }
        }
        contract.stream_version = stamp.version;
        contract.updated_at = stamp.at;
        contract.updated_by = stamp.by;
        if amended {
            return record_version(rows, stamp);
        }
        Ok(())
    }
}

/// Copies the contract's terms and value, as they now stand, into its current version's row.
fn record_version(rows: &mut ContractRows, stamp: &Stamp) -> Result<(), Inconsistent> {
    let contract = existing(&mut rows.row, "no such contract row")?;
    if rows.children.iter().any(|v| v.version == contract.version) {
        return Err(Inconsistent("the contract version is already recorded"));
    }
    let version = ContractVersionRow {
        contract_id: contract.id,
        version: contract.version,
        tenant_id: contract.tenant_id,
        terms: contract.terms.clone(),
        value: contract.value,
        amended_at: stamp.at,
        amended_by: stamp.by,
    };
    rows.children.push(version);
    Ok(())
}

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

    /// The draft's row: version 1 of the first term.
    fn row(&self, stamp: &Stamp) -> ContractRow {
        ContractRow {
            id: stamp.id,
            tenant_id: stamp.tenant_id,
            account_id: self.account_id,
            quote_id: self.quote_id,
            title: self.title.as_str().to_owned(),
            status: "Draft".to_owned(),
            value: self.value,
            currency: self.currency.as_str().to_owned(),
            start_date: self.start_date,
            end_date: self.end_date,
            terms: self.terms.as_str().to_owned(),
            version: 1,
            term: 1,
            customer_signatory: None,
            customer_signatory_email: None,
            customer_signed_at: None,
            vendor_signatory: None,
            vendor_signatory_email: None,
            vendor_signed_at: None,
            vendor_signed_by: None,
            approval_id: None,
            activated_on: None,
            terminated_reason: None,
            effective_date: None,
            expired_on: None,
            created_at: stamp.at,
            created_by: stamp.by,
            updated_at: stamp.at,
            updated_by: stamp.by,
            stream_version: stamp.version,
            cancelled_reason: None,
        }
    }
}

/// Erases the signatories of `read.contracts` rows folded before their subject was forgotten
/// (`aggregates::personal`): a customer signatory, or a vendor one signed by a process, is the
/// account's contact data; a vendor signatory signed by a user is that user's. The contracts
/// read model folds Contract events alone, so the forgetting events of other aggregates reach
/// its rows here. Never rebuilt: a rebuild reads the forgotten fields erased already.
#[derive(Debug, Clone, Copy, Default)]
pub struct SignatoryErasure;

#[async_trait::async_trait]
impl Projection for SignatoryErasure {
    fn name(&self) -> &'static str {
        "contract_signatory_erasure"
    }

    fn handles(&self, aggregate_type: &str) -> bool {
        [User::TYPE, Account::TYPE].contains(&aggregate_type)
    }

    fn routing_keys(&self) -> Vec<String> {
        vec![
            format!("{}.UserForgotten", User::TYPE),
            format!("{}.AccountContactDataForgotten", Account::TYPE),
        ]
    }

    async fn apply_events(
        &self,
        conn: &mut PgConnection,
        events: &[&StoredEvent],
    ) -> Result<(), ProjectionError> {
        for event in events {
            let statement = match event.event_type.as_str() {
                "UserForgotten" => ERASE_USER_SIGNATURES,
                "AccountContactDataForgotten" => ERASE_ACCOUNT_SIGNATURES,
                _ => continue,
            };
            let subject = Stamp::of(event)?.id;
            sqlx::query(statement)
                .bind(subject)
                .bind(ERASED)
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
    }
}

const ERASE_USER_SIGNATURES: &str = "\
update contracts set vendor_signatory = $2, vendor_signatory_email = $2
 where vendor_signed_by = $1 and vendor_signatory is distinct from $2";

const ERASE_ACCOUNT_SIGNATURES: &str = "\
update contracts
   set customer_signatory = case when customer_signatory is null then null else $2 end,
       customer_signatory_email = case when customer_signatory is null then null else $2 end,
       vendor_signatory = case when vendor_signed_by is null and vendor_signatory is not null
                               then $2 else vendor_signatory end,
       vendor_signatory_email = case when vendor_signed_by is null
                                      and vendor_signatory is not null
                                     then $2 else vendor_signatory_email end
 where account_id = $1";
