//! Given/when/then for every Tenant command: each success and each rejection.
use chrono::Utc;
use uuid::Uuid;

use super::{Tenant, TenantCommand as C, TenantEvent as E};
use crate::{Actor, Command, Role, TenantPolicy};

use crate::testing::*;

const TENANT: Uuid = Uuid::from_u128(42);

impl Scenario for C {
    type Aggregate = Tenant;
    type Fake = ();

    fn fake() {}

    fn services(_fake: ()) -> Services<Self> {}
}

fn by_operator(body: C) -> Command<C> {
    Command::new(TENANT, Actor::system("tenant-set-policy"), Utc::now(), body)
}

/// The default policy with a stricter discount rule.
fn stricter() -> TenantPolicy {
    TenantPolicy {
        max_discount_without_approval: 5.into(),
        ..TenantPolicy::default()
    }
}

fn set(policy: TenantPolicy) -> E {
    E::TenantPolicySet { policy }
}

#[tokio::test]
async fn the_operator_sets_a_policy_and_each_change_is_an_event() {
    let first = C::SetPolicy {
        policy: TenantPolicy::default(),
    };
    expect_events(
        vec![],
        by_operator(first),
        vec![set(TenantPolicy::default())],
    )
    .await;
    let change = C::SetPolicy { policy: stricter() };
    expect_events(
        vec![set(TenantPolicy::default())],
        by_operator(change),
        vec![set(stricter())],
    )
    .await;
}

#[tokio::test]
async fn setting_the_policy_in_force_again_records_nothing() {
    let again = C::SetPolicy { policy: stricter() };
    expect_events(vec![set(stricter())], by_operator(again), vec![]).await;
}

#[tokio::test]
async fn a_policy_the_rules_cannot_apply_is_refused() {
    let broken = TenantPolicy {
        level_sla_hours: 0,
        ..TenantPolicy::default()
    };
    let command = by_operator(C::SetPolicy { policy: broken });
    expect_err(vec![], command, invalid("level_sla_hours")).await;
}

#[tokio::test]
async fn no_user_of_the_tenant_sets_its_policy_not_even_an_admin() {
    let admin = Actor::user(Uuid::from_u128(1), vec![Role::TenantAdmin]);
    let command = Command::new(
        TENANT,
        admin,
        Utc::now(),
        C::SetPolicy { policy: stricter() },
    );
    expect_err(vec![], command, forbidden).await;
}

#[test]
fn the_state_holds_the_last_policy_set() {
    let tenant: Tenant = replay(vec![set(TenantPolicy::default()), set(stricter())]);
    assert_eq!(tenant.policy, Some(stricter()));
    assert_eq!(Tenant::default().policy, None);
}

#[test]
fn events_keep_their_wire_format() {
    let json = serde_json::to_value(set(stricter())).unwrap();
    assert_eq!(
        json["TenantPolicySet"]["policy"]["max_discount_without_approval"],
        "5"
    );
    let back: E = serde_json::from_value(json).unwrap();
    assert_eq!(back, set(stricter()));
}
