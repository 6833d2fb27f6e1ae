//! One GraphQL request = one read-only transaction with the caller's tenant set, so every
//! statement any resolver runs is under row-level security for that tenant, even one that
//! forgets its own `tenant_id` filter.
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use tokio::sync::{MappedMutexGuard, Mutex, MutexGuard};
use uuid::Uuid;

use crate::QueryError;

/// The request's transaction, shared by its resolvers. Sibling fields resolve concurrently, so
/// the connection sits behind a mutex; `None` once the request has finished it.
#[derive(Clone)]
pub struct TenantTx {
    tx: Arc<Mutex<Option<Transaction<'static, Postgres>>>>,
    /// How many times the connection was taken, i.e. statements run (see [`Self::conn`]). Tests
    /// read it to prove nested lists are batched rather than queried once per row.
    statements: Arc<AtomicU64>,
}

impl TenantTx {
    /// Begins a read-only transaction whose RLS tenant is `tenant_id`, in one round trip, with
    /// each statement planned for its own ids (see `event_store::db::Plans`). The settings are
    /// transaction-local, so it can never leak to the next user of the pooled
    /// connection.
    pub async fn begin(pool: &PgPool, tenant_id: Uuid) -> Result<Self, QueryError> {
        let tx = event_store::db::begin_read_only_for_tenant_planned(pool, tenant_id).await?;
        Ok(Self {
            tx: Arc::new(Mutex::new(Some(tx))),
            statements: Arc::new(AtomicU64::new(0)),
        })
    }

    /// The connection, held until the guard drops. Use it as `&mut *guard`, for exactly one
    /// statement: every call counts as one in [`Self::statements`].
    pub async fn conn(&self) -> Result<MappedMutexGuard<'_, PgConnection>, QueryError> {
        let guard = self.tx.lock().await;
        let conn = MutexGuard::try_map(guard, |tx| tx.as_mut().map(|tx| &mut **tx))
            .map_err(|_| QueryError::TransactionEnded)?;
        self.statements.fetch_add(1, Ordering::Relaxed);
        Ok(conn)
    }

    /// Statements the request's resolvers have run so far (not counting `begin` and `finish`).
    pub fn statements(&self) -> u64 {
        self.statements.load(Ordering::Relaxed)
    }

    /// Ends the transaction. Nothing was written, so commit and rollback differ only in
    /// intent; a second call is a no-op.
    pub async fn finish(&self, commit: bool) -> Result<(), QueryError> {
        let Some(tx) = self.tx.lock().await.take() else {
            return Ok(());
        };
        if commit {
            tx.commit().await?;
        } else {
            tx.rollback().await?;
        }
        Ok(())
    }
}
