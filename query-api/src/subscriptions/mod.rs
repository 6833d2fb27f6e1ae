//! GraphQL subscriptions over WebSocket (`GET /graphql/ws`, the `graphql-transport-ws`
//! protocol): the connection ([`ws`]), and the register that feeds and bounds the
//! subscriptions ([`hub`]). The subscription fields themselves are in `schema::subscription`.
mod hub;
pub(crate) mod ws;

pub use hub::{
    Closing, ConnectionGuard, Kind, Registration, Signal, SubscriptionHub, SubscriptionLimits,
};
