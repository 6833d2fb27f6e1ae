//! Given/when/then for every Approval command: each success and each rule's rejection.
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Duration, TimeZone, Utc};
use cqrs_es::test::TestFramework;
use cqrs_es::{Aggregate, DomainEvent};
use rust_decimal::Decimal;
use uuid::Uuid;

use super::{
    Approval, ApprovalCommand as C, ApprovalEvent as E, ApprovalServices, ApprovalStatus, Level,
    Subject, SubjectType,
};
use crate::policy::ApprovalBand;
use crate::{
    Actor, Command, CurrencyCode, DomainError, Money, Role, RuleCode, TenantPolicy, Text, UserFacts,
};

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
struct Fake {
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

fn tenant_with(policy: Option<TenantPolicy>) -> Arc<dyn ApprovalServices> {
    Arc::new(Fake {
        users: people(),
        policy,
        users_fail: false,
    })
}

/// The default policy with other approval bands for euros.
fn eur_bands(bands: Vec<ApprovalBand>) -> TenantPolicy {
    let mut policy = TenantPolicy::default();
    policy.currencies.get_mut("EUR").unwrap().approval_bands = bands;
    policy
}

fn tenant() -> Arc<dyn ApprovalServices> {
    tenant_with(Some(TenantPolicy::default()))
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

fn text(s: &str) -> Text {
    Text::parse("t", s, 1000).unwrap()
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

fn rule(code: RuleCode) -> impl Fn(DomainError) -> bool {
    move |e| matches!(e, DomainError::RuleViolated { code: c, .. } if c == code)
}

fn forbidden(e: DomainError) -> bool {
    matches!(e, DomainError::Forbidden(_))
}

fn invalid(field: &'static str) -> impl Fn(DomainError) -> bool {
    move |e| matches!(e, DomainError::InvalidField { field: ref f, .. } if f == field)
}

async fn expect_err(given: Vec<E>, command: Command<C>, check: impl Fn(DomainError) -> bool) {
    expect_err_with(tenant(), given, command, check).await;
}

async fn expect_err_with(
    services: Arc<dyn ApprovalServices>,
    given: Vec<E>,
    command: Command<C>,
    check: impl Fn(DomainError) -> bool,
) {
    let name = command.body.name();
    let result = TestFramework::<Approval>::with(services)
        .given(given)
        .when_async(command)
        .await
        .inspect_result();
    match result {
        Err(e) => assert!(check(e.clone()), "{name}: unexpected error {e:?}"),
        Ok(events) => panic!("{name}: expected a rejection, got {events:?}"),
    }
}

async fn expect_events(given: Vec<E>, command: Command<C>, expected: Vec<E>) {
    expect_events_with(tenant(), given, command, expected).await;
}

async fn expect_events_with(
    services: Arc<dyn ApprovalServices>,
    given: Vec<E>,
    command: Command<C>,
    expected: Vec<E>,
) {
    TestFramework::<Approval>::with(services)
        .given(given)
        .when_async(command)
        .await
        .then_expect_events(expected);
}

fn replayed(events: Vec<E>) -> Approval {
    let mut approval = Approval::default();
    for event in events {
        approval.apply(event);
    }
    approval
}

// RequestApproval

#[tokio::test]
async fn a_9000_request_needs_one_manager_due_after_the_sla() {
    expect_events(
        vec![],
        by(timer(), request_command("9000.00")),
        vec![small()],
    )
    .await;
    assert_eq!(
        replayed(vec![small()]).status(),
        Some(ApprovalStatus::Pending)
    );
}

#[tokio::test]
async fn a_60000_request_gets_manager_tenant_admin_and_tenant_admin() {
    expect_events(
        vec![],
        by(timer(), request_command("60000.00")),
        vec![large()],
    )
    .await;
}

#[tokio::test]
async fn the_chain_and_sla_follow_the_tenants_policy() {
    let policy = TenantPolicy {
        level_sla_hours: 8,
        ..eur_bands(vec![
            ApprovalBand {
                up_to: Some(Decimal::from(1_000)),
                levels: vec![Role::Operator],
            },
            ApprovalBand {
                up_to: None,
                levels: vec![Role::Manager, Role::Manager],
            },
        ])
    };
    let expected = |amount: &str, roles: &[Role]| E::ApprovalRequested {
        subject: subject(),
        amount: money(amount, "EUR"),
        requester_id: id(REQUESTER),
        levels: roles
            .iter()
            .map(|&role| Level {
                role,
                due_at: hours(8),
            })
            .collect(),
    };
    expect_events_with(
        tenant_with(Some(policy.clone())),
        vec![],
        by(timer(), request_command("1000")),
        vec![expected("1000", &[Role::Operator])],
    )
    .await;
    expect_events_with(
        tenant_with(Some(policy)),
        vec![],
        by(timer(), request_command("1000.01")),
        vec![expected("1000.01", &[Role::Manager, Role::Manager])],
    )
    .await;
}

#[tokio::test]
async fn users_cannot_request_approval() {
    for who in [ADMIN, REQUESTER] {
        expect_err(vec![], by(user(who), request_command("9000")), forbidden).await;
    }
}

#[tokio::test]
async fn request_rejects_each_invalid_field() {
    let with =
        |amount: &str, currency: &str, subject_id: Uuid, requester_id: Uuid| C::RequestApproval {
            subject_type: SubjectType::Contract,
            subject_id,
            subject_version: 1,
            amount: amount.parse().unwrap(),
            currency: currency.into(),
            requester_id,
        };
    let cases = [
        ("currency", with("10", "euro", id(500), id(REQUESTER))),
        ("amount", with("-1", "EUR", id(500), id(REQUESTER))),
        ("amount", with("1.001", "EUR", id(500), id(REQUESTER))),
        ("amount", with("1.5", "JPY", id(500), id(REQUESTER))),
        ("subject_id", with("10", "EUR", Uuid::nil(), id(REQUESTER))),
        ("requester_id", with("10", "EUR", id(500), Uuid::nil())),
    ];
    for (field, command) in cases {
        expect_err(vec![], by(timer(), command), invalid(field)).await;
    }
}

#[tokio::test]
async fn requesting_again_for_the_same_submission_changes_nothing() {
    for given in [
        vec![small()],
        vec![small(), approved(1, MANAGER, None), granted()],
    ] {
        expect_events(given, by(timer(), request_command("9000")), vec![]).await;
    }
    let other_version = C::RequestApproval {
        subject_type: SubjectType::Quote,
        subject_id: id(500),
        subject_version: 4,
        amount: "9000".parse().unwrap(),
        currency: "EUR".into(),
        requester_id: id(REQUESTER),
    };
    expect_err(
        vec![small()],
        by(timer(), other_version),
        rule(RuleCode::ApprovalExists),
    )
    .await;
    expect_err(
        vec![small()],
        by(timer(), request_command("9500")),
        rule(RuleCode::ApprovalExists),
    )
    .await;
}

#[tokio::test]
async fn request_needs_a_readable_policy_that_names_approvers() {
    let request = || by(timer(), request_command("9000"));
    expect_err_with(tenant_with(None), vec![], request(), |e| {
        matches!(e, DomainError::LookupFailed(_))
    })
    .await;
    let empty = eur_bands(vec![]);
    expect_err_with(
        tenant_with(Some(empty)),
        vec![],
        request(),
        rule(RuleCode::NoApprovalChain),
    )
    .await;
    let viewers = eur_bands(vec![ApprovalBand {
        up_to: None,
        levels: vec![Role::Manager, Role::Viewer],
    }]);
    expect_err_with(
        tenant_with(Some(viewers)),
        vec![],
        request(),
        rule(RuleCode::InvalidApprovalChain),
    )
    .await;
}

#[tokio::test]
async fn commands_before_the_request_are_not_found() {
    for command in [
        approve(),
        reject("no"),
        delegate(MANAGER),
        C::EscalateLevel {},
        cancel("no"),
    ] {
        expect_err(vec![], by(user(MANAGER), command), |e| {
            e == DomainError::NotFound("approval")
        })
        .await;
    }
}

// ApproveLevel

#[tokio::test]
async fn a_manager_approves_a_single_level_request_and_it_is_granted() {
    let command = C::ApproveLevel {
        comment: Some(" margin is fine ".into()),
    };
    let level_approved = E::LevelApproved {
        level: 1,
        approver_id: id(MANAGER),
        comment: Some(text("margin is fine")),
        next_due_at: None,
    };
    expect_events(
        vec![small()],
        by(user(MANAGER), command),
        vec![level_approved.clone(), granted()],
    )
    .await;
    let approval = replayed(vec![small(), level_approved, granted()]);
    assert_eq!(approval.status(), Some(ApprovalStatus::Approved));
}

#[tokio::test]
async fn approving_an_earlier_level_gives_the_next_its_whole_sla() {
    expect_events(
        vec![large()],
        at(hours(30), user(MANAGER), approve()),
        vec![approved(1, MANAGER, Some(hours(54)))],
    )
    .await;
    // Level 2 was due at hour 24 when requested; its clock restarted at hour 30.
    expect_err(
        vec![large(), approved(1, MANAGER, Some(hours(54)))],
        at(hours(50), timer(), C::EscalateLevel {}),
        rule(RuleCode::LevelNotOverdue),
    )
    .await;
}

#[tokio::test]
async fn a_60000_request_completes_only_after_three_distinct_approvers() {
    let first = approved(1, MANAGER, Some(hours(24)));
    let second = approved(2, ADMIN, Some(hours(24)));
    expect_events(
        vec![large()],
        by(user(MANAGER), approve()),
        vec![first.clone()],
    )
    .await;
    expect_events(
        vec![large(), first.clone()],
        by(user(ADMIN), approve()),
        vec![second.clone()],
    )
    .await;
    let two_done = vec![large(), first, second];
    expect_err(two_done.clone(), by(user(ADMIN), approve()), forbidden).await;
    expect_events(
        two_done.clone(),
        by(user(ADMIN_2), approve()),
        vec![approved(3, ADMIN_2, None), granted()],
    )
    .await;
    assert_eq!(replayed(two_done).status(), Some(ApprovalStatus::Pending));
}

#[tokio::test]
async fn the_requester_cannot_approve_their_own_request() {
    expect_err(vec![small()], by(user(REQUESTER), approve()), forbidden).await;
}

#[tokio::test]
async fn the_same_manager_cannot_approve_two_levels() {
    let first = approved(1, MANAGER, Some(hours(24)));
    expect_err(
        vec![two_managers(), first.clone()],
        by(user(MANAGER), approve()),
        forbidden,
    )
    .await;
    expect_events(
        vec![two_managers(), first],
        by(user(MANAGER_2), approve()),
        vec![approved(2, MANAGER_2, None), granted()],
    )
    .await;
    // Holding both roles does not let one person approve a Manager and a TenantAdmin level.
    expect_err(
        vec![large(), approved(1, MANAGER_AND_ADMIN, Some(hours(24)))],
        by(user(MANAGER_AND_ADMIN), approve()),
        forbidden,
    )
    .await;
}

#[tokio::test]
async fn a_manager_whose_limit_is_below_the_amount_cannot_approve() {
    for manager in [LOW_MANAGER, USD_MANAGER, UNLIMITED_MANAGER] {
        expect_err(vec![small()], by(user(manager), approve()), forbidden).await;
    }
    let within = requested("4000", &[Role::Manager]);
    expect_events(
        vec![within],
        by(user(LOW_MANAGER), approve()),
        vec![approved(1, LOW_MANAGER, None), granted()],
    )
    .await;
    // A limit equal to the amount covers it.
    let at_limit = requested("100000.00", &[Role::Manager]);
    expect_events(
        vec![at_limit],
        by(user(MANAGER), approve()),
        vec![approved(1, MANAGER, None), granted()],
    )
    .await;
}

#[tokio::test]
async fn only_holders_of_the_levels_role_may_approve() {
    for who in [OPERATOR, ADMIN] {
        expect_err(vec![small()], by(user(who), approve()), forbidden).await;
    }
    expect_err(
        vec![large(), approved(1, MANAGER, Some(hours(24)))],
        by(user(MANAGER_2), approve()),
        forbidden,
    )
    .await;
}

#[tokio::test]
async fn deactivated_unknown_and_system_actors_cannot_approve() {
    for actor in [user(INACTIVE_MANAGER), user(STRANGER), timer()] {
        expect_err(vec![small()], by(actor, approve()), forbidden).await;
    }
    // Facts are read in the command's tenant only.
    let elsewhere = Command::new(id(OTHER_TENANT), user(MANAGER), t0(), approve());
    expect_err(vec![small()], elsewhere, forbidden).await;
}

#[tokio::test]
async fn approve_checks_the_comment() {
    for comment in ["  ", &"x".repeat(1001)] {
        let command = C::ApproveLevel {
            comment: Some(comment.to_owned()),
        };
        expect_err(
            vec![small()],
            by(user(MANAGER), command),
            invalid("comment"),
        )
        .await;
    }
}

#[tokio::test]
async fn a_failed_lookup_decides_nothing() {
    let failing: Arc<dyn ApprovalServices> = Arc::new(Fake {
        users: people(),
        policy: Some(TenantPolicy::default()),
        users_fail: true,
    });
    expect_err_with(failing, vec![small()], by(user(MANAGER), approve()), |e| {
        matches!(e, DomainError::LookupFailed(_))
    })
    .await;
}

#[tokio::test]
async fn nothing_is_decided_after_a_final_status() {
    let finals = [
        vec![small(), approved(1, MANAGER, None), granted()],
        vec![small(), rejected()],
        vec![small(), cancelled()],
    ];
    for given in finals {
        let commands = [
            (user(MANAGER_2), approve()),
            (user(MANAGER_2), reject("late")),
            (user(ADMIN), delegate(MANAGER_2)),
            (timer(), C::EscalateLevel {}),
            (user(REQUESTER), cancel("late")),
        ];
        for (actor, command) in commands {
            expect_err(
                given.clone(),
                at(hours(100), actor, command),
                rule(RuleCode::ApprovalClosed),
            )
            .await;
        }
    }
}

// RejectApproval

#[tokio::test]
async fn an_eligible_approver_rejects_with_a_reason_and_the_chain_ends() {
    let first = approved(1, MANAGER, Some(hours(24)));
    let expected = E::ApprovalRejected {
        subject: subject(),
        level: 2,
        approver_id: id(ADMIN),
        reason: text("margin too thin"),
    };
    expect_events(
        vec![large(), first.clone()],
        by(user(ADMIN), reject(" margin too thin ")),
        vec![expected.clone()],
    )
    .await;
    let approval = replayed(vec![large(), first, expected]);
    assert_eq!(approval.status(), Some(ApprovalStatus::Rejected));
}

#[tokio::test]
async fn reject_needs_a_reason_and_someone_who_could_approve() {
    expect_err(
        vec![small()],
        by(user(MANAGER), reject(" ")),
        invalid("reason"),
    )
    .await;
    for who in [REQUESTER, OPERATOR, LOW_MANAGER, INACTIVE_MANAGER] {
        expect_err(vec![small()], by(user(who), reject("no")), forbidden).await;
    }
    expect_err(vec![small()], by(timer(), reject("no")), forbidden).await;
}

// DelegateLevel

#[tokio::test]
async fn a_delegated_level_is_decided_by_the_delegate_alone() {
    expect_events(
        vec![small()],
        by(user(MANAGER), delegate(MANAGER_2)),
        vec![delegated(MANAGER, MANAGER_2)],
    )
    .await;
    let given = vec![small(), delegated(MANAGER, MANAGER_2)];
    expect_err(given.clone(), by(user(MANAGER), approve()), forbidden).await;
    expect_err(given.clone(), by(user(MANAGER), reject("no")), forbidden).await;
    expect_events(
        given,
        by(user(MANAGER_2), approve()),
        vec![approved(1, MANAGER_2, None), granted()],
    )
    .await;
}

#[tokio::test]
async fn a_tenant_admin_may_delegate_a_level_they_do_not_approve() {
    expect_events(
        vec![small()],
        by(user(ADMIN), delegate(MANAGER)),
        vec![delegated(ADMIN, MANAGER)],
    )
    .await;
}

#[tokio::test]
async fn only_the_levels_approver_or_a_tenant_admin_may_delegate() {
    for actor in [user(OPERATOR), user(REQUESTER), timer()] {
        expect_err(vec![small()], by(actor, delegate(MANAGER_2)), forbidden).await;
    }
    // Once delegated, other holders of the role no longer decide the level; the delegate does.
    let given = vec![small(), delegated(MANAGER, MANAGER_2)];
    expect_err(
        given.clone(),
        by(user(MANAGER), delegate(MANAGER)),
        forbidden,
    )
    .await;
    expect_events(
        given,
        by(user(MANAGER_2), delegate(MANAGER)),
        vec![delegated(MANAGER_2, MANAGER)],
    )
    .await;
    // Who approved an earlier level is not this level's approver.
    expect_err(
        vec![two_managers(), approved(1, MANAGER, Some(hours(24)))],
        by(user(MANAGER), delegate(MANAGER_2)),
        forbidden,
    )
    .await;
}

#[tokio::test]
async fn delegating_to_an_ineligible_user_is_refused() {
    let cases = [
        (STRANGER, RuleCode::DelegateUnknown),
        (INACTIVE_MANAGER, RuleCode::DelegateInactive),
        (OPERATOR, RuleCode::DelegateLacksRole),
        (ADMIN_2, RuleCode::DelegateLacksRole),
        (LOW_MANAGER, RuleCode::DelegateLimitTooLow),
        (USD_MANAGER, RuleCode::DelegateLimitTooLow),
        (UNLIMITED_MANAGER, RuleCode::DelegateLimitTooLow),
        (REQUESTER, RuleCode::DelegateIsRequester),
    ];
    for (to, code) in cases {
        expect_err(vec![small()], by(user(ADMIN), delegate(to)), rule(code)).await;
    }
    expect_err(
        vec![two_managers(), approved(1, MANAGER, Some(hours(24)))],
        by(user(ADMIN), delegate(MANAGER)),
        rule(RuleCode::DelegateApprovedALevel),
    )
    .await;
    let elsewhere = Command::new(id(OTHER_TENANT), user(ADMIN), t0(), delegate(MANAGER_2));
    expect_err(vec![small()], elsewhere, rule(RuleCode::DelegateUnknown)).await;
}

#[tokio::test]
async fn delegating_to_the_current_delegate_changes_nothing() {
    expect_events(
        vec![small(), delegated(MANAGER, MANAGER_2)],
        by(user(ADMIN), delegate(MANAGER_2)),
        vec![],
    )
    .await;
}

// EscalateLevel

#[tokio::test]
async fn an_overdue_manager_level_escalates_to_tenant_admin_recording_the_breach() {
    let escalated = E::LevelEscalated {
        level: 1,
        from_role: Role::Manager,
        to_role: Role::TenantAdmin,
        overdue_since: hours(24),
        new_due_at: hours(54),
    };
    expect_events(
        vec![small()],
        at(hours(30), timer(), C::EscalateLevel {}),
        vec![escalated.clone()],
    )
    .await;
    let given = vec![small(), escalated];
    expect_err(given.clone(), by(user(MANAGER), approve()), forbidden).await;
    expect_events(
        given,
        by(user(ADMIN), approve()),
        vec![approved(1, ADMIN, None), granted()],
    )
    .await;
}

#[tokio::test]
async fn escalation_waits_until_the_level_is_due() {
    let just_before = hours(24) - Duration::seconds(1);
    expect_err(
        vec![small()],
        at(just_before, timer(), C::EscalateLevel {}),
        rule(RuleCode::LevelNotOverdue),
    )
    .await;
    expect_events(
        vec![small()],
        at(hours(24), timer(), C::EscalateLevel {}),
        vec![E::LevelEscalated {
            level: 1,
            from_role: Role::Manager,
            to_role: Role::TenantAdmin,
            overdue_since: hours(24),
            new_due_at: hours(48),
        }],
    )
    .await;
}

#[tokio::test]
async fn escalation_climbs_from_operator_and_stays_with_tenant_admins() {
    expect_events(
        vec![requested("500", &[Role::Operator])],
        at(hours(25), timer(), C::EscalateLevel {}),
        vec![E::LevelEscalated {
            level: 1,
            from_role: Role::Operator,
            to_role: Role::Manager,
            overdue_since: hours(24),
            new_due_at: hours(49),
        }],
    )
    .await;
    expect_events(
        vec![large(), approved(1, MANAGER, Some(hours(30)))],
        at(hours(31), timer(), C::EscalateLevel {}),
        vec![E::LevelEscalated {
            level: 2,
            from_role: Role::TenantAdmin,
            to_role: Role::TenantAdmin,
            overdue_since: hours(30),
            new_due_at: hours(55),
        }],
    )
    .await;
}

#[tokio::test]
async fn escalation_drops_a_delegation() {
    let escalated = E::LevelEscalated {
        level: 1,
        from_role: Role::Manager,
        to_role: Role::TenantAdmin,
        overdue_since: hours(24),
        new_due_at: hours(48),
    };
    let given = vec![small(), delegated(MANAGER, MANAGER_2), escalated];
    expect_err(given.clone(), by(user(MANAGER_2), approve()), forbidden).await;
    expect_events(
        given,
        by(user(ADMIN_2), approve()),
        vec![approved(1, ADMIN_2, None), granted()],
    )
    .await;
}

#[tokio::test]
async fn only_the_timer_escalates() {
    expect_err(
        vec![small()],
        at(hours(30), user(ADMIN), C::EscalateLevel {}),
        forbidden,
    )
    .await;
}

// CancelApproval

#[tokio::test]
async fn the_requester_cancels_a_pending_request() {
    let expected = E::ApprovalCancelled {
        subject: subject(),
        reason: text("customer changed the order"),
    };
    expect_events(
        vec![large(), approved(1, MANAGER, Some(hours(24)))],
        by(user(REQUESTER), cancel("customer changed the order")),
        vec![expected.clone()],
    )
    .await;
    let approval = replayed(vec![large(), expected]);
    assert_eq!(approval.status(), Some(ApprovalStatus::Cancelled));
}

#[tokio::test]
async fn no_user_but_the_requester_may_cancel() {
    for actor in [user(MANAGER), user(ADMIN)] {
        expect_err(vec![small()], by(actor, cancel("no")), forbidden).await;
    }
}

/// A withdrawn quote's open request is cancelled by the approval process.
#[tokio::test]
async fn the_approval_process_cancels_the_request_of_a_withdrawn_subject() {
    let withdrawn = E::ApprovalCancelled {
        subject: subject(),
        reason: text("the quote was withdrawn"),
    };
    let process = Actor::system("process.approvals");
    expect_events(
        vec![small()],
        by(process.clone(), cancel("the quote was withdrawn")),
        vec![withdrawn.clone()],
    )
    .await;
    expect_err(
        vec![small(), withdrawn],
        by(process, cancel("the quote was withdrawn")),
        rule(RuleCode::ApprovalClosed),
    )
    .await;
}

#[tokio::test]
async fn cancel_needs_a_reason_and_an_open_request() {
    expect_err(
        vec![small()],
        by(user(REQUESTER), cancel("")),
        invalid("reason"),
    )
    .await;
    expect_err(
        vec![small(), approved(1, MANAGER, None), granted()],
        by(user(REQUESTER), cancel("too late")),
        rule(RuleCode::ApprovalClosed),
    )
    .await;
}

// Wire format and events

#[test]
fn commands_parse_from_the_wire_format_and_reject_unknown_fields() {
    let parse = |value: serde_json::Value| serde_json::from_value::<C>(value);
    let request_body = |subject_type: &str| {
        serde_json::json!({
            "subject_type": subject_type,
            "subject_id": id(500),
            "subject_version": 3,
            "amount": "9000.00",
            "currency": "eur",
            "requester_id": id(REQUESTER),
        })
    };
    let request = parse(serde_json::json!({ "RequestApproval": request_body("Quote") })).unwrap();
    assert_eq!(request, request_command("9000.00"));
    assert_eq!(request.name(), "RequestApproval");
    let approve = parse(serde_json::json!({ "ApproveLevel": {} })).unwrap();
    assert_eq!(approve, C::ApproveLevel { comment: None });
    let escalate = parse(serde_json::json!({ "EscalateLevel": {} })).unwrap();
    assert_eq!(escalate.name(), "EscalateLevel");
    for bad in [
        serde_json::json!({ "ApproveLevel": { "comment": "ok", "level": 2 } }),
        serde_json::json!({ "DelegateLevel": {} }),
        serde_json::json!({ "RequestApproval": request_body("Invoice") }),
        serde_json::json!({ "Nope": {} }),
    ] {
        assert!(parse(bad.clone()).is_err(), "{bad} should fail");
    }
}

#[test]
fn events_are_versioned_named_and_round_trip() {
    let events = [
        (large(), "ApprovalRequested"),
        (approved(1, MANAGER, Some(hours(24))), "LevelApproved"),
        (granted(), "ApprovalGranted"),
        (rejected(), "ApprovalRejected"),
        (delegated(MANAGER, MANAGER_2), "LevelDelegated"),
        (
            E::LevelEscalated {
                level: 1,
                from_role: Role::Manager,
                to_role: Role::TenantAdmin,
                overdue_since: hours(24),
                new_due_at: hours(48),
            },
            "LevelEscalated",
        ),
        (cancelled(), "ApprovalCancelled"),
    ];
    for (event, name) in events {
        assert_eq!(event.event_type(), name);
        assert_eq!(event.event_version(), "1.0");
        let json = serde_json::to_string(&event).unwrap();
        assert_eq!(serde_json::from_str::<E>(&json).unwrap(), event);
    }
    // Money stays an exact decimal string on the wire.
    let json = serde_json::to_value(large()).unwrap();
    assert_eq!(json["ApprovalRequested"]["amount"]["amount"], "60000.00");
}

#[test]
fn state_survives_a_snapshot() {
    let approval = replayed(vec![large(), approved(1, MANAGER, Some(hours(30)))]);
    let json = serde_json::to_string(&approval).unwrap();
    let restored: Approval = serde_json::from_str(&json).unwrap();
    assert_eq!(serde_json::to_string(&restored).unwrap(), json);
    assert_eq!(restored.status(), Some(ApprovalStatus::Pending));
}

/// Delegation checks the delegate once; approval checks them again as they are now. A Manager
/// made a Viewer (or deactivated) after a level was handed to them cannot decide it, whatever
/// roles their old token still names.
#[tokio::test]
async fn a_delegate_is_checked_again_as_they_are_at_approval_time() {
    let given = vec![small(), delegated(MANAGER, MANAGER_2)];
    for now in [
        person(
            MANAGER_2,
            &[Role::Viewer],
            Some(money("100000", "EUR")),
            true,
        ),
        person(
            MANAGER_2,
            &[Role::Manager],
            Some(money("100000", "EUR")),
            false,
        ),
        person(MANAGER_2, &[Role::Manager], Some(money("10", "EUR")), true),
    ] {
        let mut users = people();
        users.retain(|u| u.user_id != id(MANAGER_2));
        users.push(now.clone());
        let services = Arc::new(Fake {
            users,
            policy: Some(TenantPolicy::default()),
            users_fail: false,
        });
        for command in [approve(), reject("no")] {
            let command = by(user(MANAGER_2), command);
            expect_err_with(services.clone(), given.clone(), command, forbidden).await;
        }
    }
}
