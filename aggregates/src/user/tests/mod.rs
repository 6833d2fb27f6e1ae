//! Given/when/then for every User command: each success and each rejection.
use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use rust_decimal::Decimal;
use uuid::Uuid;

use super::{User, UserCommand as C, UserEvent as E, UserServices};
use crate::account::{AccountFacts, AccountStatus, Tier};
use crate::{Actor, Command, CurrencyCode, DomainError, Email, Money, Role, RuleCode};

use crate::testing::*;

mod activity;
mod approval_limit;
mod credentials;
mod forget;
mod personal;
mod register;
mod roles;
mod wire;

const TENANT: Uuid = Uuid::from_u128(42);
const OTHER_TENANT: Uuid = Uuid::from_u128(43);
/// The user the stream belongs to.
const ME: Uuid = Uuid::from_u128(1);
/// Another user, holding whatever role a test gives.
const SOMEONE: Uuid = Uuid::from_u128(7);
const ACCOUNT: Uuid = Uuid::from_u128(100);
const OTHER_ACCOUNT: Uuid = Uuid::from_u128(101);
const SUSPENDED_ACCOUNT: Uuid = Uuid::from_u128(102);
const CLOSED_ACCOUNT: Uuid = Uuid::from_u128(103);
const FOREIGN_ACCOUNT: Uuid = Uuid::from_u128(104);

/// An in-memory tenant directory: other users' addresses, the active TenantAdmin count and the
/// accounts, each in its tenant.
pub(crate) struct Directory {
    emails: Vec<(Uuid, &'static str)>,
    active_admins: u32,
    accounts: Vec<(Uuid, Uuid, AccountStatus)>,
    failing: bool,
}

impl Directory {
    fn new() -> Self {
        Self {
            emails: vec![(SOMEONE, "taken@acme.test")],
            active_admins: 2,
            accounts: vec![
                (TENANT, ACCOUNT, AccountStatus::Active),
                (TENANT, OTHER_ACCOUNT, AccountStatus::Prospect),
                (TENANT, SUSPENDED_ACCOUNT, AccountStatus::Suspended),
                (TENANT, CLOSED_ACCOUNT, AccountStatus::Closed),
                (OTHER_TENANT, FOREIGN_ACCOUNT, AccountStatus::Active),
            ],
            failing: false,
        }
    }

    fn with_admins(active_admins: u32) -> Self {
        Self {
            active_admins,
            ..Self::new()
        }
    }

    fn check(&self) -> Result<(), DomainError> {
        if self.failing {
            Err(DomainError::LookupFailed("users".into()))
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl UserServices for Directory {
    async fn email_in_use(
        &self,
        tenant_id: Uuid,
        email: &Email,
        except: Option<Uuid>,
    ) -> Result<bool, DomainError> {
        self.check()?;
        Ok(tenant_id == TENANT
            && self
                .emails
                .iter()
                .any(|(id, e)| e.eq_ignore_ascii_case(email.as_str()) && Some(*id) != except))
    }

    async fn active_tenant_admins(&self, tenant_id: Uuid) -> Result<u32, DomainError> {
        self.check()?;
        assert_eq!(tenant_id, TENANT, "lookups stay in the command's tenant");
        Ok(self.active_admins)
    }

    async fn account(
        &self,
        tenant_id: Uuid,
        account_id: Uuid,
    ) -> Result<Option<AccountFacts>, DomainError> {
        self.check()?;
        Ok(self
            .accounts
            .iter()
            .find(|(t, a, _)| *t == tenant_id && *a == account_id)
            .map(|&(_, _, status)| AccountFacts {
                status,
                currency: CurrencyCode::parse("c", "EUR").unwrap(),
                tier: Tier::Standard,
            }))
    }
}

fn as_role(role: Role) -> Actor {
    Actor::user(SOMEONE, vec![role])
}

fn admin() -> Actor {
    as_role(Role::TenantAdmin)
}

/// The user themself, holding only `roles`.
fn me(roles: Vec<Role>) -> Actor {
    Actor::user(ME, roles)
}

fn by(actor: Actor, body: C) -> Command<C> {
    Command::new(TENANT, actor, Utc::now(), body)
}

fn email(s: &str) -> Email {
    Email::parse("e", s).unwrap()
}

fn register_command(roles: Vec<Role>, account_id: Option<Uuid>) -> C {
    C::RegisterUser {
        user_id: ME,
        email: " Ann@Acme.Test ".into(),
        display_name: " Ann Example ".into(),
        roles,
        account_id,
    }
}

fn registered(roles: Vec<Role>, account_id: Option<Uuid>) -> E {
    E::UserRegistered {
        user_id: ME,
        email: email("ann@acme.test"),
        display_name: text("Ann Example"),
        roles,
        account_id,
    }
}

fn operator() -> E {
    registered(vec![Role::Operator], None)
}

fn tenant_admin() -> E {
    registered(vec![Role::TenantAdmin], None)
}

fn partner() -> E {
    registered(vec![Role::Partner], Some(ACCOUNT))
}

fn deactivated() -> E {
    E::UserDeactivated {
        reason: text("left"),
    }
}

fn limit(amount: &str, currency: &str) -> C {
    C::SetApprovalLimit {
        amount: amount.parse().unwrap(),
        currency: currency.into(),
    }
}

impl Scenario for C {
    type Aggregate = User;
    type Fake = Directory;

    /// The tenant's other users, two active TenantAdmins and its accounts.
    fn fake() -> Directory {
        Directory::new()
    }

    fn services(fake: Directory) -> Services<Self> {
        Arc::new(fake)
    }
}
