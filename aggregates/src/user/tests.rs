//! Given/when/then for every User command: each success and each rejection.
use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use cqrs_es::test::TestFramework;
use rust_decimal::Decimal;
use uuid::Uuid;

use super::{User, UserCommand as C, UserEvent as E, UserServices};
use crate::account::{AccountFacts, AccountStatus, Tier};
use crate::{Actor, Command, CurrencyCode, DomainError, Email, Money, Role, RuleCode, Text};

type Given = TestFramework<User>;

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
struct Directory {
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

fn text(s: &str) -> Text {
    Text::parse("t", s, 1000).unwrap()
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

fn forbidden(e: DomainError) -> bool {
    matches!(e, DomainError::Forbidden(_))
}

fn rule(code: RuleCode) -> impl Fn(DomainError) -> bool {
    move |e| matches!(e, DomainError::RuleViolated { code: c, .. } if c == code)
}

fn invalid(field: &'static str) -> impl Fn(DomainError) -> bool {
    move |e| matches!(e, DomainError::InvalidField { field: ref f, .. } if f == field)
}

async fn expect_err_with(
    services: Directory,
    given: Vec<E>,
    command: Command<C>,
    check: impl Fn(DomainError) -> bool,
) {
    let result = Given::with(Arc::new(services))
        .given(given)
        .when_async(command)
        .await
        .inspect_result();
    match result {
        Err(e) => assert!(check(e.clone()), "unexpected error {e:?}"),
        Ok(events) => panic!("expected a rejection, got {events:?}"),
    }
}

async fn expect_err(given: Vec<E>, command: Command<C>, check: impl Fn(DomainError) -> bool) {
    expect_err_with(Directory::new(), given, command, check).await;
}

async fn expect_events_with(
    services: Directory,
    given: Vec<E>,
    command: Command<C>,
    expected: Vec<E>,
) {
    Given::with(Arc::new(services))
        .given(given)
        .when_async(command)
        .await
        .then_expect_events(expected);
}

async fn expect_events(given: Vec<E>, command: Command<C>, expected: Vec<E>) {
    expect_events_with(Directory::new(), given, command, expected).await;
}

// RegisterUser

#[tokio::test]
async fn register_normalises_email_name_and_roles() {
    expect_events(
        vec![],
        by(
            admin(),
            register_command(vec![Role::Operator, Role::Manager, Role::Operator], None),
        ),
        vec![registered(vec![Role::Manager, Role::Operator], None)],
    )
    .await;
}

#[tokio::test]
async fn the_system_registers_a_new_tenants_first_admin() {
    expect_events_with(
        Directory::with_admins(0),
        vec![],
        by(
            Actor::system("tenant-create"),
            register_command(vec![Role::TenantAdmin], None),
        ),
        vec![tenant_admin()],
    )
    .await;
}

#[tokio::test]
async fn only_tenant_admins_register_users() {
    for role in [Role::Manager, Role::Operator, Role::Viewer, Role::Partner] {
        expect_err(
            vec![],
            by(as_role(role), register_command(vec![Role::Viewer], None)),
            forbidden,
        )
        .await;
    }
}

#[tokio::test]
async fn register_rejects_each_invalid_field() {
    let with = |email: &str, display_name: &str, roles: Vec<Role>, user_id: Uuid| C::RegisterUser {
        user_id,
        email: email.into(),
        display_name: display_name.into(),
        roles,
        account_id: None,
    };
    let long = "x".repeat(201);
    let cases = [
        ("email", with("ann", "Ann", vec![Role::Viewer], ME)),
        (
            "display_name",
            with("a@b.test", " ", vec![Role::Viewer], ME),
        ),
        (
            "display_name",
            with("a@b.test", &long, vec![Role::Viewer], ME),
        ),
        ("roles", with("a@b.test", "Ann", vec![], ME)),
        (
            "roles",
            with("a@b.test", "Ann", vec![Role::Partner, Role::Manager], ME),
        ),
        (
            "user_id",
            with("a@b.test", "Ann", vec![Role::Viewer], Uuid::nil()),
        ),
    ];
    for (field, command) in cases {
        expect_err(vec![], by(admin(), command), invalid(field)).await;
    }
}

#[tokio::test]
async fn register_refuses_an_email_in_use_whatever_its_case() {
    let command = C::RegisterUser {
        user_id: ME,
        email: "TAKEN@acme.test".into(),
        display_name: "Ann".into(),
        roles: vec![Role::Viewer],
        account_id: None,
    };
    expect_err(vec![], by(admin(), command), rule(RuleCode::EmailInUse)).await;
}

#[tokio::test]
async fn a_partner_is_registered_with_exactly_one_account() {
    expect_events(
        vec![],
        by(
            admin(),
            register_command(vec![Role::Partner], Some(ACCOUNT)),
        ),
        vec![partner()],
    )
    .await;
    // Suspension stops new quotes and contracts, not the account's people.
    expect_events(
        vec![],
        by(
            admin(),
            register_command(vec![Role::Partner], Some(SUSPENDED_ACCOUNT)),
        ),
        vec![registered(vec![Role::Partner], Some(SUSPENDED_ACCOUNT))],
    )
    .await;
    expect_err(
        vec![],
        by(admin(), register_command(vec![Role::Partner], None)),
        invalid("account_id"),
    )
    .await;
}

#[tokio::test]
async fn only_partners_have_an_account() {
    expect_err(
        vec![],
        by(
            admin(),
            register_command(vec![Role::Operator], Some(ACCOUNT)),
        ),
        invalid("account_id"),
    )
    .await;
}

#[tokio::test]
async fn a_partner_account_must_exist_in_the_tenant_and_be_open() {
    for missing in [Uuid::from_u128(999), FOREIGN_ACCOUNT] {
        expect_err(
            vec![],
            by(
                admin(),
                register_command(vec![Role::Partner], Some(missing)),
            ),
            |e| e == DomainError::NotFound("account"),
        )
        .await;
    }
    expect_err(
        vec![],
        by(
            admin(),
            register_command(vec![Role::Partner], Some(CLOSED_ACCOUNT)),
        ),
        rule(RuleCode::AccountClosed),
    )
    .await;
}

#[tokio::test]
async fn register_twice_is_a_rule_violation() {
    expect_err(
        vec![operator()],
        by(admin(), register_command(vec![Role::Operator], None)),
        rule(RuleCode::UserExists),
    )
    .await;
}

#[tokio::test]
async fn commands_on_an_unregistered_user_are_not_found() {
    expect_err(vec![], by(admin(), C::ReactivateUser {}), |e| {
        e == DomainError::NotFound("user")
    })
    .await;
}

#[tokio::test]
async fn a_failed_lookup_decides_nothing() {
    let services = Directory {
        failing: true,
        ..Directory::new()
    };
    expect_err_with(
        services,
        vec![],
        by(admin(), register_command(vec![Role::Viewer], None)),
        |e| matches!(e, DomainError::LookupFailed(_)),
    )
    .await;
}

// ChangeRoles

#[tokio::test]
async fn change_roles_records_old_and_new_and_ignores_the_same_roles() {
    expect_events(
        vec![operator()],
        by(
            admin(),
            C::ChangeRoles {
                roles: vec![Role::Operator, Role::Manager],
                account_id: None,
            },
        ),
        vec![E::UserRolesChanged {
            from: vec![Role::Operator],
            to: vec![Role::Manager, Role::Operator],
            account_id: None,
        }],
    )
    .await;
    expect_events(
        vec![operator()],
        by(
            admin(),
            C::ChangeRoles {
                roles: vec![Role::Operator],
                account_id: None,
            },
        ),
        vec![],
    )
    .await;
}

#[tokio::test]
async fn only_tenant_admins_change_roles_even_their_own() {
    for actor in [as_role(Role::Manager), me(vec![Role::Operator])] {
        expect_err(
            vec![operator()],
            by(
                actor,
                C::ChangeRoles {
                    roles: vec![Role::TenantAdmin],
                    account_id: None,
                },
            ),
            forbidden,
        )
        .await;
    }
}

#[tokio::test]
async fn change_roles_rejects_invalid_role_sets() {
    for roles in [vec![], vec![Role::Partner, Role::Viewer]] {
        expect_err(
            vec![operator()],
            by(
                admin(),
                C::ChangeRoles {
                    roles,
                    account_id: Some(ACCOUNT),
                },
            ),
            invalid("roles"),
        )
        .await;
    }
}

#[tokio::test]
async fn the_last_active_tenant_admin_keeps_the_role() {
    let demote = || C::ChangeRoles {
        roles: vec![Role::Manager],
        account_id: None,
    };
    expect_err_with(
        Directory::with_admins(1),
        vec![tenant_admin()],
        by(me(vec![Role::TenantAdmin]), demote()),
        rule(RuleCode::LastTenantAdmin),
    )
    .await;
    let demoted = E::UserRolesChanged {
        from: vec![Role::TenantAdmin],
        to: vec![Role::Manager],
        account_id: None,
    };
    expect_events_with(
        Directory::with_admins(2),
        vec![tenant_admin()],
        by(admin(), demote()),
        vec![demoted.clone()],
    )
    .await;
    // A deactivated admin is not one of the active ones the tenant relies on.
    expect_events_with(
        Directory::with_admins(1),
        vec![tenant_admin(), deactivated()],
        by(admin(), demote()),
        vec![demoted],
    )
    .await;
}

#[tokio::test]
async fn becoming_a_partner_needs_an_account_and_leaving_drops_it() {
    expect_events(
        vec![operator()],
        by(
            admin(),
            C::ChangeRoles {
                roles: vec![Role::Partner],
                account_id: Some(ACCOUNT),
            },
        ),
        vec![E::UserRolesChanged {
            from: vec![Role::Operator],
            to: vec![Role::Partner],
            account_id: Some(ACCOUNT),
        }],
    )
    .await;
    expect_err(
        vec![operator()],
        by(
            admin(),
            C::ChangeRoles {
                roles: vec![Role::Partner],
                account_id: None,
            },
        ),
        invalid("account_id"),
    )
    .await;
    expect_err(
        vec![operator()],
        by(
            admin(),
            C::ChangeRoles {
                roles: vec![Role::Partner],
                account_id: Some(CLOSED_ACCOUNT),
            },
        ),
        rule(RuleCode::AccountClosed),
    )
    .await;
    expect_events(
        vec![partner()],
        by(
            admin(),
            C::ChangeRoles {
                roles: vec![Role::Viewer],
                account_id: None,
            },
        ),
        vec![E::UserRolesChanged {
            from: vec![Role::Partner],
            to: vec![Role::Viewer],
            account_id: None,
        }],
    )
    .await;
    expect_err(
        vec![partner()],
        by(
            admin(),
            C::ChangeRoles {
                roles: vec![Role::Viewer],
                account_id: Some(ACCOUNT),
            },
        ),
        invalid("account_id"),
    )
    .await;
}

#[tokio::test]
async fn a_partner_is_moved_with_link_partner_account_not_change_roles() {
    let keep = |account_id| C::ChangeRoles {
        roles: vec![Role::Partner],
        account_id,
    };
    expect_events(vec![partner()], by(admin(), keep(None)), vec![]).await;
    expect_events(vec![partner()], by(admin(), keep(Some(ACCOUNT))), vec![]).await;
    expect_err(
        vec![partner()],
        by(admin(), keep(Some(OTHER_ACCOUNT))),
        invalid("account_id"),
    )
    .await;
}

// LinkPartnerAccount

#[tokio::test]
async fn link_partner_account_moves_a_partner_once() {
    expect_events(
        vec![partner()],
        by(
            admin(),
            C::LinkPartnerAccount {
                account_id: OTHER_ACCOUNT,
            },
        ),
        vec![E::PartnerAccountLinked {
            account_id: OTHER_ACCOUNT,
            previous_account_id: Some(ACCOUNT),
        }],
    )
    .await;
    expect_events(
        vec![partner()],
        by(
            admin(),
            C::LinkPartnerAccount {
                account_id: ACCOUNT,
            },
        ),
        vec![],
    )
    .await;
}

#[tokio::test]
async fn link_partner_account_is_refused_for_non_partners_and_bad_accounts() {
    expect_err(
        vec![operator()],
        by(
            admin(),
            C::LinkPartnerAccount {
                account_id: ACCOUNT,
            },
        ),
        rule(RuleCode::NotAPartner),
    )
    .await;
    expect_err(
        vec![partner()],
        by(
            admin(),
            C::LinkPartnerAccount {
                account_id: FOREIGN_ACCOUNT,
            },
        ),
        |e| e == DomainError::NotFound("account"),
    )
    .await;
    expect_err(
        vec![partner()],
        by(
            admin(),
            C::LinkPartnerAccount {
                account_id: CLOSED_ACCOUNT,
            },
        ),
        rule(RuleCode::AccountClosed),
    )
    .await;
}

#[tokio::test]
async fn only_tenant_admins_link_partners() {
    for actor in [as_role(Role::Manager), me(vec![Role::Partner])] {
        expect_err(
            vec![partner()],
            by(
                actor,
                C::LinkPartnerAccount {
                    account_id: OTHER_ACCOUNT,
                },
            ),
            forbidden,
        )
        .await;
    }
}

// SetApprovalLimit

fn limit(amount: &str, currency: &str) -> C {
    C::SetApprovalLimit {
        amount: amount.parse().unwrap(),
        currency: currency.into(),
    }
}

#[tokio::test]
async fn set_approval_limit_records_exact_money_once() {
    let manager = registered(vec![Role::Manager], None);
    let set = E::ApprovalLimitSet {
        amount: Decimal::new(2_500_000, 2),
        currency: CurrencyCode::parse("c", "EUR").unwrap(),
    };
    expect_events(
        vec![manager.clone()],
        by(admin(), limit("25000.00", "eur")),
        vec![set.clone()],
    )
    .await;
    expect_events(
        vec![manager, set],
        by(admin(), limit("25000", "EUR")),
        vec![],
    )
    .await;
}

#[tokio::test]
async fn set_approval_limit_rejects_bad_money() {
    let manager = registered(vec![Role::Manager], None);
    for (command, field) in [
        (limit("-1", "EUR"), "amount"),
        (limit("1.001", "EUR"), "amount"),
        (limit("1.5", "JPY"), "amount"),
        (limit("1", "euro"), "currency"),
    ] {
        expect_err(vec![manager.clone()], by(admin(), command), invalid(field)).await;
    }
}

#[tokio::test]
async fn viewers_and_partners_have_no_approval_limit() {
    for user in [registered(vec![Role::Viewer], None), partner()] {
        expect_err(
            vec![user],
            by(admin(), limit("100", "EUR")),
            rule(RuleCode::NotAnApprover),
        )
        .await;
    }
}

#[tokio::test]
async fn only_tenant_admins_set_approval_limits_even_their_own() {
    let manager = registered(vec![Role::Manager], None);
    for actor in [as_role(Role::Manager), me(vec![Role::Manager])] {
        expect_err(
            vec![manager.clone()],
            by(actor, limit("100", "EUR")),
            forbidden,
        )
        .await;
    }
}

// ChangeEmail

fn change_email(to: &str) -> C {
    C::ChangeEmail { email: to.into() }
}

#[tokio::test]
async fn users_change_their_own_email_and_admins_anyones() {
    let changed = E::UserEmailChanged {
        from: email("ann@acme.test"),
        to: email("ann.b@acme.test"),
    };
    for actor in [me(vec![Role::Operator]), admin()] {
        expect_events(
            vec![operator()],
            by(actor, change_email("Ann.B@Acme.test")),
            vec![changed.clone()],
        )
        .await;
    }
}

#[tokio::test]
async fn nobody_else_changes_a_users_email() {
    for actor in [
        as_role(Role::Manager),
        Actor::user(SOMEONE, vec![Role::Partner]),
        Actor::system("anything"),
    ] {
        expect_err(
            vec![operator()],
            by(actor, change_email("x@acme.test")),
            forbidden,
        )
        .await;
    }
}

#[tokio::test]
async fn change_email_keeps_addresses_unique_and_valid() {
    expect_err(
        vec![operator()],
        by(me(vec![Role::Operator]), change_email("Taken@ACME.test")),
        rule(RuleCode::EmailInUse),
    )
    .await;
    expect_err(
        vec![operator()],
        by(me(vec![Role::Operator]), change_email("not-an-address")),
        invalid("email"),
    )
    .await;
    // The user's own address in another case is no change at all.
    expect_events(
        vec![operator()],
        by(me(vec![Role::Operator]), change_email("ANN@acme.test")),
        vec![],
    )
    .await;
}

#[tokio::test]
async fn the_own_address_does_not_count_as_taken() {
    let services = Directory {
        emails: vec![(ME, "ann.b@acme.test")],
        ..Directory::new()
    };
    expect_events_with(
        services,
        vec![operator()],
        by(me(vec![Role::Operator]), change_email("ann.b@acme.test")),
        vec![E::UserEmailChanged {
            from: email("ann@acme.test"),
            to: email("ann.b@acme.test"),
        }],
    )
    .await;
}

// ChangePassword

#[tokio::test]
async fn password_changes_record_who_changed_it() {
    expect_events(
        vec![operator()],
        by(me(vec![Role::Operator]), C::ChangePassword {}),
        vec![E::PasswordChanged { by: ME }],
    )
    .await;
    expect_events(
        vec![operator()],
        by(admin(), C::ChangePassword {}),
        vec![E::PasswordChanged { by: SOMEONE }],
    )
    .await;
}

#[tokio::test]
async fn nobody_else_changes_a_password() {
    for actor in [as_role(Role::Manager), Actor::system("anything")] {
        expect_err(vec![operator()], by(actor, C::ChangePassword {}), forbidden).await;
    }
}

#[tokio::test]
async fn a_deactivated_user_changes_nothing_but_an_admin_still_can() {
    for command in [C::ChangePassword {}, change_email("new@acme.test")] {
        expect_err(
            vec![operator(), deactivated()],
            by(me(vec![Role::Operator]), command),
            rule(RuleCode::UserDeactivated),
        )
        .await;
    }
    expect_events(
        vec![operator(), deactivated()],
        by(admin(), C::ChangePassword {}),
        vec![E::PasswordChanged { by: SOMEONE }],
    )
    .await;
}

// DeactivateUser

fn deactivate(reason: &str) -> C {
    C::DeactivateUser {
        reason: reason.into(),
    }
}

#[tokio::test]
async fn deactivate_records_the_reason() {
    expect_events(
        vec![operator()],
        by(admin(), deactivate(" left ")),
        vec![deactivated()],
    )
    .await;
    expect_err(
        vec![operator()],
        by(admin(), deactivate("")),
        invalid("reason"),
    )
    .await;
}

#[tokio::test]
async fn deactivate_twice_is_a_rule_violation() {
    expect_err(
        vec![operator(), deactivated()],
        by(admin(), deactivate("again")),
        rule(RuleCode::UserDeactivated),
    )
    .await;
}

#[tokio::test]
async fn the_last_active_tenant_admin_cannot_be_deactivated() {
    expect_err_with(
        Directory::with_admins(1),
        vec![tenant_admin()],
        by(me(vec![Role::TenantAdmin]), deactivate("leaving")),
        rule(RuleCode::LastTenantAdmin),
    )
    .await;
    expect_events_with(
        Directory::with_admins(2),
        vec![tenant_admin()],
        by(admin(), deactivate("left")),
        vec![deactivated()],
    )
    .await;
    // Users who are not admins never need the count.
    expect_events_with(
        Directory::with_admins(1),
        vec![operator()],
        by(admin(), deactivate("left")),
        vec![deactivated()],
    )
    .await;
}

#[tokio::test]
async fn only_tenant_admins_deactivate() {
    for actor in [as_role(Role::Manager), me(vec![Role::Operator])] {
        expect_err(vec![operator()], by(actor, deactivate("x")), forbidden).await;
    }
}

// ReactivateUser

#[tokio::test]
async fn reactivate_only_a_deactivated_user() {
    expect_events(
        vec![operator(), deactivated()],
        by(admin(), C::ReactivateUser {}),
        vec![E::UserReactivated {}],
    )
    .await;
    expect_err(
        vec![operator()],
        by(admin(), C::ReactivateUser {}),
        rule(RuleCode::UserNotDeactivated),
    )
    .await;
    expect_err(
        vec![operator(), deactivated()],
        by(as_role(Role::Manager), C::ReactivateUser {}),
        forbidden,
    )
    .await;
}

// State and wire format

#[test]
fn facts_follow_the_events() {
    let mut user = User::default();
    assert!(user.facts().is_none());
    for event in [
        registered(vec![Role::Manager], None),
        E::ApprovalLimitSet {
            amount: Decimal::from(5000),
            currency: CurrencyCode::parse("c", "EUR").unwrap(),
        },
        E::UserEmailChanged {
            from: email("ann@acme.test"),
            to: email("ann.b@acme.test"),
        },
        deactivated(),
    ] {
        cqrs_es::Aggregate::apply(&mut user, event);
    }
    let facts = user.facts().unwrap();
    assert_eq!(facts.user_id, ME);
    assert_eq!(facts.roles, vec![Role::Manager]);
    assert_eq!(
        facts.approval_limit,
        Some(Money::new(
            Decimal::from(5000),
            CurrencyCode::parse("c", "EUR").unwrap()
        ))
    );
    assert!(!facts.active);
    assert_eq!(user.email(), Some(&email("ann.b@acme.test")));
}

#[test]
fn commands_parse_from_the_wire_format_and_reject_unknown_fields() {
    let ok: C =
        serde_json::from_str(r#"{"SetApprovalLimit":{"amount":"1250.00","currency":"EUR"}}"#)
            .unwrap();
    assert_eq!(ok, limit("1250.00", "EUR"));
    let roles: C =
        serde_json::from_str(r#"{"ChangeRoles":{"roles":["Manager","Viewer"]}}"#).unwrap();
    assert_eq!(
        roles,
        C::ChangeRoles {
            roles: vec![Role::Manager, Role::Viewer],
            account_id: None
        }
    );
    assert_eq!(roles.name(), "ChangeRoles");
    assert!(serde_json::from_str::<C>(r#"{"ChangePassword":{"password":"x"}}"#).is_err());
    assert!(serde_json::from_str::<C>(r#"{"ChangeRoles":{"roles":["Root"]}}"#).is_err());
}

#[test]
fn no_event_carries_a_password() {
    let json = serde_json::to_string(&E::PasswordChanged { by: ME }).unwrap();
    assert_eq!(json, format!(r#"{{"PasswordChanged":{{"by":"{ME}"}}}}"#));
}
