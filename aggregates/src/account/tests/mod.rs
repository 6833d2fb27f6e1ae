//! Given/when/then for every Account command: each success and each rejection.
use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use rust_decimal::Decimal;
use uuid::Uuid;

use super::{
    Account, AccountCommand as C, AccountEvent as E, AccountServices, AccountStatus, Tier,
};
use crate::{
    Actor, Command, CountryCode, CurrencyCode, DomainError, Email, Role, RuleCode, TenantPolicy,
};

use crate::testing::*;

mod details;
mod forget;
mod opening;
mod personal;
mod process;
mod status;
mod wire;

/// A tenant on the default policy.
pub(crate) struct Tenant;

#[async_trait]
impl AccountServices for Tenant {
    async fn policy(&self, _tenant_id: Uuid) -> Result<TenantPolicy, DomainError> {
        Ok(TenantPolicy::default())
    }
}

fn as_role(role: Role) -> Actor {
    Actor::user(Uuid::from_u128(7), vec![role])
}

fn admin() -> Actor {
    as_role(Role::TenantAdmin)
}

fn by(actor: Actor, body: C) -> Command<C> {
    Command::new(Uuid::from_u128(42), actor, Utc::now(), body)
}

fn open_command() -> C {
    C::OpenAccount {
        name: " Globex ".into(),
        legal_name: "Globex Corporation".into(),
        country: "de".into(),
        billing_email: "Billing@Globex.Test".into(),
        currency: "eur".into(),
        tier: Tier::Gold,
    }
}

fn opened() -> E {
    E::AccountOpened {
        name: text("Globex"),
        legal_name: text("Globex Corporation"),
        country: CountryCode::parse("c", "DE").unwrap(),
        billing_email: Email::parse("e", "billing@globex.test").unwrap(),
        currency: CurrencyCode::parse("c", "EUR").unwrap(),
        tier: Tier::Gold,
    }
}

fn activated() -> E {
    E::AccountActivated {
        quote_id: Uuid::from_u128(1),
    }
}

fn contract() -> Uuid {
    Uuid::from_u128(99)
}

impl Scenario for C {
    type Aggregate = Account;
    type Fake = Tenant;

    /// A tenant on the default policy.
    fn fake() -> Tenant {
        Tenant
    }

    fn services(fake: Tenant) -> Services<Self> {
        Arc::new(fake)
    }
}
