//! Contract: placeholder until its aggregate lands.
