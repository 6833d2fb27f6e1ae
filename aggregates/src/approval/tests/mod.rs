//! Given/when/then for every Approval command: each success and each rule's rejection.
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Duration, TimeZone, Utc};
use cqrs_es::DomainEvent;
use rust_decimal::Decimal;
use uuid::Uuid;

use super::{
    Approval, ApprovalCommand as C, ApprovalEvent as E, ApprovalServices, ApprovalStatus, Level,
    Subject, SubjectType,
};
use crate::policy::ApprovalBand;
use crate::{
    Actor, Command, CurrencyCode, DomainError, Money, Role, RuleCode, TenantPolicy, UserFacts,
};

use crate::testing::*;

mod cancel;
mod decisions;
mod delegation;
mod escalation;
mod request;
mod wire;

// The people of one tenant. The requester is a Manager with a large limit, so every refusal of
// their approval is due to having requested it.
const REQUESTER: u128 = 1;
const MANAGER: u128 = 2;
const MANAGER_2: u128 = 3;
const LOW_MANAGER: u128 = 4;
const USD_MANAGER: u128 = 5;
const ADMIN: u128 = 6;
const ADMIN_2: u128 = 7;
const OPERATOR: u128 = 8;
const INACTIVE_MANAGER: u128 = 9;
const UNLIMITED_MANAGER: u128 = 10;
const MANAGER_AND_ADMIN: u128 = 11;
const STRANGER: u128 = 99;

const TENANT: u128 = 42;
const OTHER_TENANT: u128 = 43;

fn id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

fn money(amount: &str, currency: &str) -> Money {
    Money::new(
        amount.parse().unwrap(),
        CurrencyCode::parse("c", currency).unwrap(),
    )
}

fn person(n: u128, roles: &[Role], limit: Option<Money>, active: bool) -> UserFacts {
    UserFacts {
        user_id: id(n),
        roles: roles.to_vec(),
        approval_limit: limit,
        account_id: None,
        active,
    }
}

fn people() -> Vec<UserFacts> {
    let eur = |a: &str| Some(money(a, "EUR"));
    vec![
        person(REQUESTER, &[Role::Manager], eur("100000"), true),
        person(MANAGER, &[Role::Manager], eur("100000"), true),
        person(MANAGER_2, &[Role::Manager], eur("100000"), true),
        person(LOW_MANAGER, &[Role::Manager], eur("5000"), true),
        person(
            USD_MANAGER,
            &[Role::Manager],
            Some(money("100000", "USD")),
            true,
        ),
        person(ADMIN, &[Role::TenantAdmin], eur("1000000"), true),
        person(ADMIN_2, &[Role::TenantAdmin], eur("1000000"), true),
        person(OPERATOR, &[Role::Operator], eur("100000"), true),
        person(INACTIVE_MANAGER, &[Role::Manager], eur("100000"), false),
        person(UNLIMITED_MANAGER, &[Role::Manager], None, true),
        person(
            MANAGER_AND_ADMIN,
            &[Role::Manager, Role::TenantAdmin],
            eur("1000000"),
            true,
        ),
    ]
}

/// An in-memory tenant: its users and policy. `None` policy or `users_fail` make lookups fail.
#[derive(Clone)]
pub(crate) struct Fake {
    users: Vec<UserFacts>,
    policy: Option<TenantPolicy>,
    users_fail: bool,
}

#[async_trait]
impl ApprovalServices for Fake {
    async fn user(&self, tenant_id: Uuid, user_id: Uuid) -> Result<Option<UserFacts>, DomainError> {
        if self.users_fail {
            return Err(DomainError::LookupFailed("user".into()));
        }
        if tenant_id != id(TENANT) {
            return Ok(None);
        }
        Ok(self.users.iter().find(|u| u.user_id == user_id).cloned())
    }

    async fn policy(&self, _tenant_id: Uuid) -> Result<TenantPolicy, DomainError> {
        self.policy
            .clone()
            .ok_or_else(|| DomainError::LookupFailed("tenant policy".into()))
    }
}

fn tenant_with(policy: Option<TenantPolicy>) -> Fake {
    Fake {
        users: people(),
        policy,
        users_fail: false,
    }
}

/// The default policy with other approval bands for euros.
fn eur_bands(bands: Vec<ApprovalBand>) -> TenantPolicy {
    let mut policy = TenantPolicy::default();
    policy.currencies.get_mut("EUR").unwrap().approval_bands = bands;
    policy
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 3, 9, 0, 0).unwrap()
}

fn hours(n: i64) -> DateTime<Utc> {
    t0() + Duration::hours(n)
}

fn user(n: u128) -> Actor {
    let roles = people()
        .into_iter()
        .find(|p| p.user_id == id(n))
        .map_or(vec![Role::Manager], |p| p.roles);
    Actor::user(id(n), roles)
}

fn timer() -> Actor {
    Actor::system("approval-sla")
}

fn by(actor: Actor, body: C) -> Command<C> {
    Command::new(id(TENANT), actor, t0(), body)
}

fn at(when: DateTime<Utc>, actor: Actor, body: C) -> Command<C> {
    Command::new(id(TENANT), actor, when, body)
}

fn subject() -> Subject {
    Subject {
        subject_type: SubjectType::Quote,
        id: id(500),
        version: 3,
    }
}

fn request_command(amount: &str) -> C {
    C::RequestApproval {
        subject_type: SubjectType::Quote,
        subject_id: id(500),
        subject_version: 3,
        amount: amount.parse().unwrap(),
        currency: "eur".into(),
        requester_id: id(REQUESTER),
    }
}

/// A request made at t0 for `amount` EUR with `roles` as its chain, each level due a day later.
fn requested(amount: &str, roles: &[Role]) -> E {
    E::ApprovalRequested {
        subject: subject(),
        amount: money(amount, "EUR"),
        requester_id: id(REQUESTER),
        levels: roles
            .iter()
            .map(|&role| Level {
                role,
                due_at: hours(24),
            })
            .collect(),
    }
}

fn small() -> E {
    requested("9000.00", &[Role::Manager])
}

fn large() -> E {
    requested(
        "60000.00",
        &[Role::Manager, Role::TenantAdmin, Role::TenantAdmin],
    )
}

/// Two Manager levels, so one Manager could be eligible for both.
fn two_managers() -> E {
    requested("9000.00", &[Role::Manager, Role::Manager])
}

fn approved(level: u32, approver: u128, next_due_at: Option<DateTime<Utc>>) -> E {
    E::LevelApproved {
        level,
        approver_id: id(approver),
        comment: None,
        next_due_at,
    }
}

fn granted() -> E {
    E::ApprovalGranted { subject: subject() }
}

fn rejected() -> E {
    E::ApprovalRejected {
        subject: subject(),
        level: 1,
        approver_id: id(MANAGER),
        reason: text("no"),
    }
}

fn cancelled() -> E {
    E::ApprovalCancelled {
        subject: subject(),
        reason: text("withdrawn"),
    }
}

fn delegated(from: u128, to: u128) -> E {
    E::LevelDelegated {
        level: 1,
        from: id(from),
        to: id(to),
    }
}

fn approve() -> C {
    C::ApproveLevel { comment: None }
}

fn reject(reason: &str) -> C {
    C::RejectApproval {
        reason: reason.into(),
    }
}

fn delegate(to: u128) -> C {
    C::DelegateLevel { to_user_id: id(to) }
}

fn cancel(reason: &str) -> C {
    C::CancelApproval {
        reason: reason.into(),
    }
}

impl Scenario for C {
    type Aggregate = Approval;
    type Fake = Fake;

    /// The tenant's people, on the default policy.
    fn fake() -> Fake {
        tenant_with(Some(TenantPolicy::default()))
    }

    fn services(fake: Fake) -> Services<Self> {
        Arc::new(fake)
    }
}
