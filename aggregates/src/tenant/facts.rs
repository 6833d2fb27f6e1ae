//! A tenant's rules read nothing outside its own stream.

/// The tenant aggregate's cqrs-es `Services`: none.
pub type Services = ();

/// The outside facts one command needs: none.
pub(crate) type Facts = ();
