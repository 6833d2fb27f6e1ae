//! What a caller may see inside their tenant. A Partner user acts for exactly one account and
//! sees only that account, its quotes, contracts, approvals and users, and the event history of
//! exactly those streams; everyone else sees the whole tenant. Enforced in SQL by every resolver
//! that reads such rows.
use aggregates::account::Account;
use aggregates::approval::Approval;
use aggregates::contract::Contract;
use aggregates::quote::Quote;
use aggregates::user::User;
use aggregates::Role;
use auth::Claims;
use cqrs_es::Aggregate;
use sqlx::postgres::PgRow;
use sqlx::{FromRow, Postgres, QueryBuilder};
use uuid::Uuid;

use crate::{QueryError, TenantTx};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountScope {
    Tenant,
    Account(Uuid),
    /// A Partner token without an account: it may see no account's rows.
    Nothing,
}

impl AccountScope {
    pub fn of(claims: &Claims) -> Self {
        if !claims.roles.contains(&Role::Partner) {
            return Self::Tenant;
        }
        claims.account_id.map_or(Self::Nothing, Self::Account)
    }

    /// Appends ` and <column> = <account>` when the caller is limited to one account.
    pub fn push(self, query: &mut QueryBuilder<'_, Postgres>, column: &str) {
        match self {
            Self::Tenant => {}
            Self::Account(id) => {
                query.push(format_args!(" and {column} = ")).push_bind(id);
            }
            Self::Nothing => {
                query.push(" and false");
            }
        }
    }

    /// The account a single-row lookup must match, `None` for the whole tenant; a Partner
    /// without an account matches the nil id, which no row has.
    pub fn account(self) -> Option<Uuid> {
        match self {
            Self::Tenant => None,
            Self::Account(id) => Some(id),
            Self::Nothing => Some(Uuid::nil()),
        }
    }

    /// Appends ` and <the event's stream is one the caller may read>` to a query over
    /// `events`: for a Partner, the streams of the read rows they may see. Decided by the read
    /// models, so a stream created a moment ago shows once its row has been projected.
    pub fn push_streams(self, query: &mut QueryBuilder<'_, Postgres>) {
        let account = match self {
            Self::Tenant => return,
            Self::Nothing => {
                query.push(" and false");
                return;
            }
            Self::Account(id) => id,
        };
        query
            .push(" and ((aggregate_type = ")
            .push_bind(Account::TYPE)
            .push(" and aggregate_id = ")
            .push_bind(account.to_string())
            .push(")");
        for (aggregate_type, table) in [
            (Quote::TYPE, "quotes"),
            (Contract::TYPE, "contracts"),
            (User::TYPE, "users"),
        ] {
            query
                .push(" or (aggregate_type = ")
                .push_bind(aggregate_type)
                .push(format_args!(
                    " and aggregate_id in \
                     (select id::text from read.{table} where account_id = "
                ))
                .push_bind(account)
                .push("))");
        }
        // An approval belongs to the account of the quote or contract it decides.
        query
            .push(" or (aggregate_type = ")
            .push_bind(Approval::TYPE)
            .push(
                " and aggregate_id in (select id::text from \
                 read.approvals where subject_id in (select id from read.quotes where account_id = ",
            )
            .push_bind(account)
            .push(" union all select id from read.contracts where account_id = ")
            .push_bind(account)
            .push("))))");
    }
}

/// One row by id from `select … from <table>` in the caller's tenant; for a Partner, only if
/// `account_column` is their account, so another account's row is as absent as a missing one.
pub(crate) async fn scoped_by_id<T>(
    tx: &TenantTx,
    select_from: &str,
    account_column: &str,
    tenant_id: Uuid,
    scope: AccountScope,
    id: Uuid,
) -> Result<Option<T>, QueryError>
where
    T: for<'r> FromRow<'r, PgRow> + Send + Unpin,
{
    let sql = format!(
        "{select_from} where tenant_id = $1 and id = $2 \
         and ($3::uuid is null or {account_column} = $3)"
    );
    let row = sqlx::query_as(&sql)
        .bind(tenant_id)
        .bind(id)
        .bind(scope.account())
        .fetch_optional(&mut *tx.conn().await?)
        .await?;
    Ok(row)
}
