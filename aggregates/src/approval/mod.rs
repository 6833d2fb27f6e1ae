//! Approval: placeholder until its aggregate lands.
