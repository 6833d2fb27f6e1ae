//! Given/when/then for every Quote command (each success and each rejection), the wire format,
//! and pricing with its property tests. Services are an in-memory fake.
use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Duration, TimeZone, Utc};
use rust_decimal::Decimal;
use uuid::Uuid;

use super::pricing::quote_totals;
use super::{
    LineItem, Quote, QuoteCommand as C, QuoteEvent as E, QuoteServices, QuoteTotals, Unit,
};
use crate::account::{AccountFacts, AccountStatus, Tier};
use crate::{Actor, Command, CurrencyCode, DomainError, Role, RuleCode, TenantPolicy};

use crate::testing::*;

mod answer;
mod approval;
mod draft;
mod lines;
mod pricing;
mod submit;
mod wire;

/// Accounts keyed by (tenant, account), and the one policy every tenant has.
#[derive(Clone)]
pub(crate) struct FakeServices {
    accounts: HashMap<(Uuid, Uuid), AccountFacts>,
    policy: TenantPolicy,
    unreachable: bool,
}

#[async_trait]
impl QuoteServices for FakeServices {
    async fn account(
        &self,
        tenant_id: Uuid,
        account_id: Uuid,
    ) -> Result<Option<AccountFacts>, DomainError> {
        if self.unreachable {
            return Err(DomainError::LookupFailed("account".into()));
        }
        Ok(self.accounts.get(&(tenant_id, account_id)).cloned())
    }

    async fn policy(&self, _tenant_id: Uuid) -> Result<TenantPolicy, DomainError> {
        if self.unreachable {
            return Err(DomainError::LookupFailed("tenant policy".into()));
        }
        Ok(self.policy.clone())
    }
}

fn fake(status: AccountStatus, tier: Tier) -> FakeServices {
    let facts = AccountFacts {
        status,
        currency: eur(),
        tier,
    };
    FakeServices {
        accounts: HashMap::from([((tenant(), account()), facts)]),
        policy: TenantPolicy::default(),
        unreachable: false,
    }
}

fn tenant() -> Uuid {
    Uuid::from_u128(42)
}

fn account() -> Uuid {
    Uuid::from_u128(100)
}

fn other_account() -> Uuid {
    Uuid::from_u128(101)
}

fn user() -> Uuid {
    Uuid::from_u128(7)
}

fn approval() -> Uuid {
    Uuid::from_u128(500)
}

fn line_id(n: u128) -> Uuid {
    Uuid::from_u128(1000 + n)
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 10, 12, 0, 0).unwrap()
}

fn valid_until() -> DateTime<Utc> {
    now() + Duration::days(30)
}

fn dec(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn as_role(role: Role) -> Actor {
    Actor::user(user(), vec![role])
}

fn operator() -> Actor {
    as_role(Role::Operator)
}

fn partner_of(account_id: Uuid) -> Actor {
    Actor::User {
        user_id: Uuid::from_u128(8),
        roles: vec![Role::Partner],
        account_id: Some(account_id),
    }
}

fn system() -> Actor {
    Actor::system("quote-process")
}

fn by(actor: Actor, body: C) -> Command<C> {
    at(now(), actor, body)
}

fn at(when: DateTime<Utc>, actor: Actor, body: C) -> Command<C> {
    Command::new(tenant(), actor, when, body)
}

fn drafted() -> E {
    E::QuoteDrafted {
        account_id: account(),
        title: text("Q1 hardware refresh"),
        currency: eur(),
        tier: Tier::Gold,
        valid_until: valid_until(),
    }
}

fn line(n: u128, quantity: &str, unit_price: &str, volume_discount_percent: &str) -> LineItem {
    LineItem {
        line_id: line_id(n),
        sku: text(&format!("SKU-{n}")),
        description: text(&format!("Item {n}")),
        quantity: dec(quantity),
        unit: Unit::Piece,
        unit_price: dec(unit_price),
        volume_discount_percent: dec(volume_discount_percent),
    }
}

fn added(line: LineItem) -> E {
    E::LineItemAdded {
        line_id: line.line_id,
        sku: line.sku,
        description: line.description,
        quantity: line.quantity,
        unit: line.unit,
        unit_price: line.unit_price,
        volume_discount_percent: line.volume_discount_percent,
    }
}

/// Two lines: 2 × 100.00 (no break) and 10 × 15.50 (Gold 5 %): 347.25 after discounts.
fn two_lines() -> Vec<LineItem> {
    vec![line(1, "2", "100.00", "0"), line(2, "10", "15.50", "5")]
}

fn totals_of(lines: &[LineItem], discount_percent: Decimal) -> QuoteTotals {
    quote_totals(lines.iter().map(LineItem::price), discount_percent, &eur())
}

fn draft_with_lines() -> Vec<E> {
    let mut events = vec![drafted()];
    events.extend(two_lines().into_iter().map(added));
    events
}

fn submitted(needs_approval: bool) -> E {
    E::QuoteSubmitted {
        submission: 1,
        requester: user(),
        totals: totals_of(&two_lines(), Decimal::ZERO),
        discount_percent: Decimal::ZERO,
        needs_approval,
        approval_chain: if needs_approval {
            vec![Role::Manager]
        } else {
            vec![]
        },
    }
}

fn pending() -> Vec<E> {
    let mut events = draft_with_lines();
    events.push(submitted(true));
    events
}

fn approved() -> Vec<E> {
    let mut events = pending();
    events.push(E::QuoteApproved {
        approval_id: Some(approval()),
    });
    events
}

fn rejected() -> Vec<E> {
    let mut events = pending();
    events.push(E::QuoteRejected {
        approval_id: approval(),
        reason: text("price too low"),
    });
    events
}

fn sent() -> Vec<E> {
    let mut events = approved();
    events.push(E::QuoteSent {});
    events
}

fn then(mut given: Vec<E>, event: E) -> Vec<E> {
    given.push(event);
    given
}

impl Scenario for C {
    type Aggregate = Quote;

    type Fake = FakeServices;

    /// An active Gold account in EUR, in `tenant()`, with the default policy.
    fn fake() -> FakeServices {
        fake(AccountStatus::Active, Tier::Gold)
    }

    fn services(fake: FakeServices) -> Services<Self> {
        Arc::new(fake)
    }
}
