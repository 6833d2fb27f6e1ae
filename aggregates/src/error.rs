use crate::RuleCode;

/// Why an aggregate refused a command. Domain reasons only: storage and transport failures
/// belong to the layers that cause them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// A field is missing, malformed or out of range.
    #[error("{field}: {message}")]
    InvalidField { field: String, message: String },
    /// A role or attribute rule denies the actor.
    #[error("{0}")]
    Forbidden(String),
    /// The aggregate does not exist (yet).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A business rule forbids the command in the aggregate's current state. `code` is stable
    /// and machine-readable; the message is for people.
    #[error("{message}")]
    RuleViolated { code: RuleCode, message: String },
    /// A fact the rules need (another aggregate's state, tenant policy) could not be read;
    /// nothing was decided.
    #[error("could not look up {0}")]
    LookupFailed(String),
}

impl DomainError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidField {
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn rule(code: RuleCode, message: impl Into<String>) -> Self {
        Self::RuleViolated {
            code,
            message: message.into(),
        }
    }
}
