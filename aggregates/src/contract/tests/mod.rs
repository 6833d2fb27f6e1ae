//! Given/when/then for every Contract command: each success and each rejection.
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use cqrs_es::test::TestFramework;
use rust_decimal::Decimal;
use uuid::Uuid;

use super::{
    Contract, ContractCommand as C, ContractEvent as E, ContractLine, ContractServices,
    ContractStatus, Party, QuoteLine,
};
use crate::account::{AccountFacts, AccountStatus, Tier};
use crate::quote::Unit;
use crate::{Actor, Command, DomainError, Email, Role, RuleCode, TenantPolicy};

use crate::testing::*;

mod approval;
mod cancel;
mod draft;
mod negotiation;
mod personal;
mod policy;
mod signing;
mod term;
mod wire;

type Given = TestFramework<Contract>;

const TENANT: Uuid = Uuid::from_u128(42);
const OTHER_TENANT: Uuid = Uuid::from_u128(43);
const ACCOUNT: Uuid = Uuid::from_u128(100);
const PROSPECT: Uuid = Uuid::from_u128(101);
const SUSPENDED: Uuid = Uuid::from_u128(102);
const CLOSED: Uuid = Uuid::from_u128(103);
const FOREIGN: Uuid = Uuid::from_u128(104);
const QUOTE: Uuid = Uuid::from_u128(200);
const APPROVAL: Uuid = Uuid::from_u128(300);
const LATER_APPROVAL: Uuid = Uuid::from_u128(301);
const START: &str = "2025-03-01";
const END: &str = "2026-02-28";

/// The tenant's accounts, each in its tenant.
pub(crate) struct Accounts {
    accounts: Vec<(Uuid, Uuid, AccountStatus)>,
    failing: bool,
}

impl Accounts {
    fn new() -> Self {
        Self {
            accounts: vec![
                (TENANT, ACCOUNT, AccountStatus::Active),
                (TENANT, PROSPECT, AccountStatus::Prospect),
                (TENANT, SUSPENDED, AccountStatus::Suspended),
                (TENANT, CLOSED, AccountStatus::Closed),
                (OTHER_TENANT, FOREIGN, AccountStatus::Active),
            ],
            failing: false,
        }
    }
}

#[async_trait]
impl ContractServices for Accounts {
    async fn account(
        &self,
        tenant_id: Uuid,
        account_id: Uuid,
    ) -> Result<Option<AccountFacts>, DomainError> {
        if self.failing {
            return Err(DomainError::LookupFailed("account".into()));
        }
        Ok(self
            .accounts
            .iter()
            .find(|(t, a, _)| *t == tenant_id && *a == account_id)
            .map(|&(_, _, status)| AccountFacts {
                status,
                currency: eur(),
                tier: Tier::Gold,
            }))
    }

    async fn policy(&self, _tenant_id: Uuid) -> Result<TenantPolicy, DomainError> {
        Ok(TenantPolicy::default())
    }
}

fn date(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

/// Noon UTC on `day`.
fn on(day: &str) -> DateTime<Utc> {
    date(day).and_hms_opt(12, 0, 0).unwrap().and_utc()
}

fn days_after(day: &str, days: u64) -> String {
    (date(day) + chrono::Days::new(days)).to_string()
}

fn days_before(day: &str, days: u64) -> String {
    (date(day) - chrono::Days::new(days)).to_string()
}

fn money(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn as_role(role: Role) -> Actor {
    Actor::user(Uuid::from_u128(7), vec![role])
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
    Actor::system("contract-process")
}

/// A command sent during the contract's first month.
fn by(actor: Actor, body: C) -> Command<C> {
    at(actor, START, body)
}

fn at(actor: Actor, day: &str, body: C) -> Command<C> {
    Command::new(TENANT, actor, on(day), body)
}

fn draft_command() -> C {
    C::DraftContract {
        account_id: ACCOUNT,
        title: " Support 2025 ".into(),
        value: money("12000.00"),
        currency: "eur".into(),
        start_date: date(START),
        end_date: date(END),
        terms: "Net 30.".into(),
    }
}

fn drafted() -> E {
    E::ContractDrafted {
        account_id: ACCOUNT,
        title: text("Support 2025"),
        value: money("12000.00"),
        currency: eur(),
        start_date: date(START),
        end_date: date(END),
        terms: text("Net 30."),
    }
}

fn quote_line() -> QuoteLine {
    QuoteLine {
        sku: "SUP-1".into(),
        description: "Support hours".into(),
        quantity: money("100"),
        unit: Unit::Hour,
        unit_price: money("125.00"),
        volume_discount_percent: money("10"),
    }
}

fn from_quote_command(lines: Vec<QuoteLine>) -> C {
    C::DraftContractFromQuote {
        quote_id: QUOTE,
        account_id: ACCOUNT,
        title: "Support 2025".into(),
        lines,
        total: money("11250.00"),
        currency: "EUR".into(),
        start_date: date(START),
        end_date: date(END),
        terms: "As quoted.".into(),
    }
}

fn drafted_from_quote() -> E {
    E::ContractDraftedFromQuote {
        quote_id: QUOTE,
        account_id: ACCOUNT,
        title: text("Support 2025"),
        lines: vec![ContractLine {
            sku: text("SUP-1"),
            description: text("Support hours"),
            quantity: money("100"),
            unit: Unit::Hour,
            unit_price: money("125.00"),
            volume_discount_percent: money("10"),
        }],
        value: money("11250.00"),
        currency: eur(),
        start_date: date(START),
        end_date: date(END),
        terms: text("As quoted."),
    }
}

fn amended(version: u32, terms: &str) -> E {
    E::ContractAmended {
        version,
        terms: Some(text(terms)),
        value: None,
    }
}

fn submitted(version: u32) -> E {
    E::ContractSubmitted {
        version,
        value: money("12000.00"),
        currency: eur(),
    }
}

fn approved() -> E {
    E::ContractApproved {
        approval_id: APPROVAL,
        version: 1,
    }
}

fn signed(party: Party) -> E {
    E::ContractSigned {
        party,
        signatory_name: text("Pat Signer"),
        signatory_email: Email::parse("e", "pat@globex.test").unwrap(),
        signed_at: on(START),
    }
}

fn activated() -> E {
    E::ContractActivated {
        account_id: ACCOUNT,
        activated_on: date(START),
    }
}

fn expired() -> E {
    E::ContractExpired {
        account_id: ACCOUNT,
        end_date: date(END),
    }
}

fn terminated() -> E {
    E::ContractTerminated {
        account_id: ACCOUNT,
        reason: text("breach"),
        effective_date: date(START),
    }
}

/// Histories that end in each status.
fn pending() -> Vec<E> {
    vec![drafted(), submitted(1)]
}

fn approved_history() -> Vec<E> {
    vec![drafted(), submitted(1), approved()]
}

fn signed_history() -> Vec<E> {
    let mut events = approved_history();
    events.extend([signed(Party::Customer), signed(Party::Vendor)]);
    events
}

fn active() -> Vec<E> {
    let mut events = signed_history();
    events.push(activated());
    events
}

fn with(mut history: Vec<E>, event: E) -> Vec<E> {
    history.push(event);
    history
}

fn cancelled() -> E {
    E::ContractCancelled {
        reason: text("abandoned"),
    }
}

fn amend(terms: Option<&str>, value: Option<&str>) -> C {
    C::AmendContract {
        terms: terms.map(Into::into),
        value: value.map(money),
    }
}

impl Scenario for C {
    type Aggregate = Contract;
    type Fake = Accounts;

    /// The tenant's accounts, on the default policy.
    fn fake() -> Accounts {
        Accounts::new()
    }

    fn services(fake: Accounts) -> Services<Self> {
        Arc::new(fake)
    }
}
