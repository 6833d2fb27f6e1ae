//! Which fields of an event are personal data, and whom they are about. The store seals each
//! such field with a key of its subject before the event is hashed and stored
//! (`event_store::personal`), and forgetting the subject destroys its keys: what was sealed
//! then reads as [`ERASED`] everywhere while the hash chain still verifies. The aggregates
//! only say what is personal; they never see a key or a sealed value.
use std::fmt;

use uuid::Uuid;

/// What a forgotten subject's personal data reads as: in aggregate state, read models,
/// history, `asOf` and exports alike.
pub const ERASED: &str = "[erased]";

/// The person a piece of personal data is about, as its keys are filed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Subject {
    /// A user: their e-mail and display name, and the vendor signatures they made.
    User(Uuid),
    /// An account's contacts: its billing e-mail, legal contact name and the customer
    /// signatories of its contracts.
    Account(Uuid),
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::User(id) => write!(f, "user:{id}"),
            Self::Account(id) => write!(f, "account:{id}"),
        }
    }
}

/// The personal fields of one event: top-level fields of its body, all about `subject`. A
/// field that is `null` (an optional one left out) holds nothing to seal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Personal {
    pub subject: Subject,
    pub fields: &'static [&'static str],
    /// The one of `fields` that is the user's sign-in address (`email` of `UserRegistered`,
    /// `to` of `UserEmailChanged`): sign-in needs it in plain text beside the event.
    pub sign_in: Option<&'static str>,
}

/// Implemented by every aggregate: the personal data in the events it decides.
pub trait PersonalData: cqrs_es::Aggregate {
    /// The personal fields of `event`, decided on stream `stream_id` with this state (the
    /// state after the event); `person` is the user who acted, when a person did (not one of
    /// our processes, nor an API key, which speaks for no one person). `None` when it holds
    /// none.
    fn personal_data(
        &self,
        stream_id: &str,
        event: &Self::Event,
        person: Option<Uuid>,
    ) -> Option<Personal>;
}
