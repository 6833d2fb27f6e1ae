//! What auditors rely on.
//!
//! - Every event's hash chains it to its stream's previous event (`chain`: version 1 before
//!   migration 0022, version 2 since, which also covers the tenant, the global position and
//!   `recorded_at`), computed by the insert trigger and recomputed here in Rust.
//! - Signed checkpoints (`checkpoint`, made by `signer`): per tenant, every stream's head and the
//!   last global position, signed with an Ed25519 key the database never holds. They catch what
//!   a chain alone cannot: a removed last event, a removed stream, and a stream rewritten and
//!   re-hashed by someone with the schema owner's rights after it was signed.
//! - `verify` checks the store against its latest checkpoints; `export` writes a tenant's events
//!   with the proof, and `verify_export` checks such a file without a database.
mod chain;
pub mod checkpoint;
mod export;
pub mod keys;
mod rows;
mod signer;
mod verify;
mod walk;

pub use chain::{EventContent, Hash};
pub use checkpoint::{CheckpointProblem, SignedCheckpoint, Statement};
pub use export::{export, verify_export, ExportFilter, ExportScope, ExportVerification};
pub use signer::{make_checkpoint, run as run_checkpoints, tenants, Outcome, Refusal};
pub use verify::{verify, CheckpointState, TenantCheckpoint, Verification};
pub use walk::{BrokenLink, ChainProblem, Findings};
