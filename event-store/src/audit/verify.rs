//! `b2b audit verify`: every stream's chain recomputed from the stored content (in Rust, under
//! each event's chain version), checked against each tenant's latest signed checkpoint.
use ed25519_dalek::VerifyingKey;
use futures::TryStreamExt;
use sqlx::PgPool;
use uuid::Uuid;

use super::checkpoint::{CheckpointProblem, Heads, Statement};
use super::rows::{ChainRow, CHAIN_COLUMNS};
use super::signer::{latest, tenants};
use super::walk::{Findings, Walk};
use crate::StoreError;

/// What the check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    pub findings: Findings,
    pub checkpoints: Vec<TenantCheckpoint>,
}

impl Verification {
    /// Nothing wrong: every chain intact, every checkpoint trusted and matched.
    pub fn passed(&self) -> bool {
        self.findings.first_broken.is_none()
            && self
                .checkpoints
                .iter()
                .all(|c| !matches!(c.state, CheckpointState::Refused(_)))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantCheckpoint {
    pub tenant_id: Uuid,
    pub slug: String,
    pub state: CheckpointState,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckpointState {
    /// None signed yet: a removed last event or a re-hashed rewrite would go unseen.
    None,
    /// Signed by the trusted key over the heads stored with it; the streams were checked
    /// against them.
    Trusted(Statement),
    Refused(CheckpointProblem),
}

/// Checks `tenant`'s streams (every tenant's when `None`). `trusted` is the key checkpoints must
/// be signed with; without one, a tenant that has checkpoints is an error, not a pass.
pub async fn verify(
    pool: &PgPool,
    tenant: Option<Uuid>,
    trusted: Option<&VerifyingKey>,
) -> Result<Verification, StoreError> {
    let mut signed = Heads::new();
    let mut checkpoints = Vec::new();
    let mut conn = pool.acquire().await?;
    for (tenant_id, slug) in tenants(pool, tenant).await? {
        let state = match latest(&mut conn, tenant_id).await? {
            None => CheckpointState::None,
            Some(checkpoint) => {
                let trusted = trusted.ok_or_else(|| {
                    StoreError::Audit(format!(
                        "tenant {slug} has signed checkpoints: give the public key to check them \
                         with (--public-key, or AUDIT_SIGNING_KEY)"
                    ))
                })?;
                match checkpoint.signed.check(trusted, &checkpoint.heads) {
                    Ok(()) => {
                        signed.extend(checkpoint.heads);
                        CheckpointState::Trusted(checkpoint.signed.statement)
                    }
                    Err(problem) => CheckpointState::Refused(problem),
                }
            }
        };
        checkpoints.push(TenantCheckpoint {
            tenant_id,
            slug,
            state,
        });
    }
    let findings = walk_streams(pool, tenant, Walk::checking(signed)).await?;
    Ok(Verification {
        findings,
        checkpoints,
    })
}

/// Every event in stream order, each hashed over the stored hash before it.
async fn walk_streams(
    pool: &PgPool,
    tenant: Option<Uuid>,
    mut walk: Walk,
) -> Result<Findings, StoreError> {
    let sql = format!(
        "select {CHAIN_COLUMNS}, lag(e.hash) over stream as previous_hash from events e \
          where $1::uuid is null or e.tenant_id = $1 \
         window stream as (partition by e.aggregate_type, e.aggregate_id order by e.sequence) \
          order by e.aggregate_type, e.aggregate_id, e.sequence"
    );
    let mut rows = sqlx::query_as::<_, ChainRow>(&sql).bind(tenant).fetch(pool);
    while let Some(row) = rows.try_next().await? {
        walk.push(row.link());
    }
    Ok(walk.finish().0)
}
