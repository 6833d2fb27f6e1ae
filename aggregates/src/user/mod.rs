//! User: placeholder until its aggregate lands.
