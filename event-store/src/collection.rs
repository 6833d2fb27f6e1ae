//! The five aggregates of the sales domain as the rest of the system names them: the command
//! API's URL collections (`accounts`, `users`, ...), the aggregate types stored with their
//! events (`A::TYPE`), and the one `match` from a collection to its aggregate, which the command route, the OpenAPI
//! document and anything else that works per collection share through [`PerAggregate`].
use std::fmt;
use std::str::FromStr;

use aggregates::account::Account;
use aggregates::approval::Approval;
use aggregates::contract::Contract;
use aggregates::quote::Quote;
use aggregates::user::User;
use aggregates::{Command, CommandSet, DomainError};
use cqrs_es::Aggregate;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;

use crate::{AggregateStore, CommandBus};

/// An aggregate the [`CommandBus`] holds a store for (the five collections' and `Tenant`, whose
/// commands only the operator's CLI sends). Its commands are `Command<Self::Body>`;
/// the body is what a client sends (parsed from JSON, documented by its schema).
pub trait BusAggregate:
    Aggregate<
        Command = Command<<Self as BusAggregate>::Body>,
        Error = DomainError,
        Event: aggregates::EventSchema,
    > + aggregates::PersonalData
    + Clone
    + 'static
{
    type Body: CommandSet + DeserializeOwned + JsonSchema + Clone + Send + Sync + 'static;

    /// This aggregate's store in `bus`.
    fn store(bus: &CommandBus) -> &AggregateStore<Self>;
}

/// A command collection of the API, `POST /api/v1/{collection}/{id}`: one per aggregate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Collection {
    Accounts,
    Users,
    Quotes,
    Approvals,
    Contracts,
}

/// Something done for one aggregate, generic over which: [`Collection::dispatch`] picks the
/// aggregate a collection names and runs it.
pub trait PerAggregate {
    type Output;

    fn run<A: BusAggregate>(self) -> Self::Output;
}

impl Collection {
    /// Every collection, in the order the API document lists them.
    pub const ALL: [Self; 5] = [
        Self::Accounts,
        Self::Users,
        Self::Quotes,
        Self::Approvals,
        Self::Contracts,
    ];

    /// The URL path segment.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accounts => "accounts",
            Self::Users => "users",
            Self::Quotes => "quotes",
            Self::Approvals => "approvals",
            Self::Contracts => "contracts",
        }
    }

    /// Runs `work` for the aggregate this collection names.
    pub fn dispatch<W: PerAggregate>(self, work: W) -> W::Output {
        match self {
            Self::Accounts => work.run::<Account>(),
            Self::Users => work.run::<User>(),
            Self::Quotes => work.run::<Quote>(),
            Self::Approvals => work.run::<Approval>(),
            Self::Contracts => work.run::<Contract>(),
        }
    }
}

impl fmt::Display for Collection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A path segment that names no collection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no command collection `{0}`")]
pub struct UnknownCollection(pub String);

impl FromStr for Collection {
    type Err = UnknownCollection;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|collection| collection.as_str() == name)
            .ok_or_else(|| UnknownCollection(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_collection_parses_from_its_own_name_only() {
        for collection in Collection::ALL {
            assert_eq!(collection.as_str().parse(), Ok(collection));
        }
        assert_eq!(
            "Quote".parse::<Collection>(),
            Err(UnknownCollection("Quote".into()))
        );
    }

    #[test]
    fn each_collection_runs_its_own_aggregate() {
        struct TypeName;
        impl PerAggregate for TypeName {
            type Output = &'static str;
            fn run<A: BusAggregate>(self) -> &'static str {
                A::TYPE
            }
        }
        let types = Collection::ALL.map(|collection| collection.dispatch(TypeName));
        assert_eq!(types, ["Account", "User", "Quote", "Approval", "Contract"]);
    }
}
