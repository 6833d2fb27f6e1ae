//! Read-your-writes. A command answers with `<id>@<version>`; a query that sends it back in
//! `X-Await-Version` waits until every read model fed by that aggregate has applied that
//! version, so the client sees its own write or learns (STALE_READ) that it would not.
use std::str::FromStr;
use std::time::Duration;

use cqrs_es::Aggregate;
use sqlx::PgPool;
use uuid::Uuid;

use crate::{AwaitTargets, QueryError};

pub const HEADER: &str = "X-Await-Version";

/// How often the checkpoints are read while waiting: short next to a projector's usual lag,
/// and a single indexed lookup, so cheap to repeat.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// A parsed `X-Await-Version: <uuid>@<version>` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AwaitVersion {
    pub aggregate_id: Uuid,
    pub version: i64,
}

impl FromStr for AwaitVersion {
    type Err = QueryError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let malformed =
            || QueryError::BadRequest(format!("{HEADER} must look like `<uuid>@<version>`"));
        let (id, version) = value.trim().split_once('@').ok_or_else(malformed)?;
        let aggregate_id = Uuid::parse_str(id).map_err(|_| malformed())?;
        let version: i64 = version.parse().map_err(|_| malformed())?;
        if version < 1 {
            return Err(malformed());
        }
        Ok(Self {
            aggregate_id,
            version,
        })
    }
}

/// Waits until the read models fed by the target's aggregate have reached its version.
/// Runs on the pool, outside the request's transaction, so the wait holds no snapshot and the
/// transaction that follows (read committed) sees what the projectors committed meanwhile.
pub async fn wait_for(
    pool: &PgPool,
    tenant_id: Uuid,
    target: AwaitVersion,
    projections_fed_by: &AwaitTargets,
    timeout: Duration,
) -> Result<(), QueryError> {
    let stale = || {
        QueryError::StaleRead(format!(
            "the read models did not reach {}@{} within {} ms",
            target.aggregate_id,
            target.version,
            timeout.as_millis()
        ))
    };
    // An id of another tenant is "unknown" here, exactly like one that does not exist.
    let aggregate_type = aggregate_type_of(pool, tenant_id, target.aggregate_id)
        .await?
        .ok_or_else(stale)?;
    let projections = projections_fed_by(&aggregate_type);
    tokio::time::timeout(timeout, poll(pool, &aggregate_type, target, &projections))
        .await
        .map_err(|_| stale())?
}

const AGGREGATE_TYPES: [&str; 5] = [
    aggregates::account::Account::TYPE,
    aggregates::user::User::TYPE,
    aggregates::quote::Quote::TYPE,
    aggregates::approval::Approval::TYPE,
    aggregates::contract::Contract::TYPE,
];

async fn aggregate_type_of(
    pool: &PgPool,
    tenant_id: Uuid,
    aggregate_id: Uuid,
) -> Result<Option<String>, QueryError> {
    // Probes the primary key once per aggregate type, so appends need no index on the id alone.
    let found = sqlx::query_scalar(
        "select aggregate_type from events where aggregate_type = any($3) \
         and aggregate_id = $1 and sequence = 1 and tenant_id = $2 limit 1",
    )
    .bind(aggregate_id.to_string())
    .bind(tenant_id)
    .bind(AGGREGATE_TYPES)
    .fetch_optional(pool)
    .await?;
    Ok(found)
}

async fn poll(
    pool: &PgPool,
    aggregate_type: &str,
    target: AwaitVersion,
    projections: &[&'static str],
) -> Result<(), QueryError> {
    while !caught_up(pool, aggregate_type, target, projections).await? {
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    Ok(())
}

/// True when every one of `projections` has applied `target.version` of the stream. A
/// projection that has never seen the stream has no row, so it counts as behind.
async fn caught_up(
    pool: &PgPool,
    aggregate_type: &str,
    target: AwaitVersion,
    projections: &[&'static str],
) -> Result<bool, QueryError> {
    let mut wanted: Vec<&str> = projections.to_vec();
    wanted.sort_unstable();
    wanted.dedup();
    if wanted.is_empty() {
        return Ok(true);
    }
    let done: i64 = sqlx::query_scalar(
        "select count(*) from projection_checkpoints \
         where projection = any($1) and aggregate_type = $2 and aggregate_id = $3 \
           and last_sequence >= $4",
    )
    .bind(&wanted)
    .bind(aggregate_type)
    .bind(target.aggregate_id.to_string())
    .bind(target.version)
    .fetch_one(pool)
    .await?;
    Ok(done == wanted.len() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0b6f7c52-51c4-4c1e-9f5e-3d1f2a9f8e10";

    #[test]
    fn a_well_formed_header_parses_into_id_and_version() {
        let parsed: AwaitVersion = format!("{ID}@3").parse().unwrap();
        assert_eq!(parsed.aggregate_id, Uuid::parse_str(ID).unwrap());
        assert_eq!(parsed.version, 3);
    }

    #[test]
    fn surrounding_whitespace_is_tolerated() {
        let parsed: AwaitVersion = format!("  {ID}@12 ").parse().unwrap();
        assert_eq!(parsed.version, 12);
    }

    #[test]
    fn malformed_headers_are_bad_requests() {
        let cases = [
            String::new(),
            ID.to_owned(),
            format!("{ID}@"),
            format!("{ID}@x"),
            format!("{ID}@0"),
            format!("{ID}@-1"),
            format!("{ID}@1@2"),
            "not-a-uuid@1".to_owned(),
            format!("@{ID}"),
        ];
        for case in cases {
            let err = case.parse::<AwaitVersion>().unwrap_err();
            assert_eq!(err.code(), "BAD_REQUEST", "{case:?}");
        }
    }
}
