//! Quote: placeholder until its aggregate lands.
