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
use crate::{Actor, Command, CurrencyCode, DomainError, Email, Role, RuleCode, TenantPolicy, Text};

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
struct Accounts {
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

fn eur() -> CurrencyCode {
    CurrencyCode::parse("c", "EUR").unwrap()
}

fn text(s: &str) -> Text {
    Text::parse("t", s, 1000).unwrap()
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
    services: Accounts,
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
    expect_err_with(Accounts::new(), given, command, check).await;
}

async fn expect_events(given: Vec<E>, command: Command<C>, expected: Vec<E>) {
    Given::with(Arc::new(Accounts::new()))
        .given(given)
        .when_async(command)
        .await
        .then_expect_events(expected);
}

// DraftContract

#[tokio::test]
async fn draft_normalises_fields_and_starts_at_version_one() {
    expect_events(vec![], by(operator(), draft_command()), vec![drafted()]).await;
    let mut contract = Contract::default();
    cqrs_es::Aggregate::apply(&mut contract, drafted());
    assert_eq!(contract.status(), Some(ContractStatus::Draft));
    assert_eq!(contract.version(), 1);
}

#[tokio::test]
async fn operators_managers_and_admins_draft_but_viewers_and_partners_never() {
    for role in [Role::Manager, Role::TenantAdmin] {
        expect_events(vec![], by(as_role(role), draft_command()), vec![drafted()]).await;
    }
    for actor in [as_role(Role::Viewer), partner_of(ACCOUNT)] {
        expect_err(vec![], by(actor, draft_command()), forbidden).await;
    }
}

/// The draft command with one field replaced.
fn draft_with(field: &str, value: &str) -> C {
    let C::DraftContract {
        account_id,
        mut title,
        value: mut amount,
        mut currency,
        start_date,
        mut end_date,
        mut terms,
    } = draft_command()
    else {
        unreachable!("draft_command builds DraftContract")
    };
    match field {
        "title" => title = value.into(),
        "value" => amount = money(value),
        "currency" => currency = value.into(),
        "end_date" => end_date = date(value),
        _ => terms = value.into(),
    }
    C::DraftContract {
        account_id,
        title,
        value: amount,
        currency,
        start_date,
        end_date,
        terms,
    }
}

#[tokio::test]
async fn draft_rejects_each_invalid_field() {
    let long_title = "x".repeat(201);
    let cases = [
        ("title", " "),
        ("title", long_title.as_str()),
        ("value", "-1"),
        ("value", "1.001"),
        ("currency", "euro"),
        ("end_date", START),
        ("end_date", "2025-02-28"),
        ("terms", ""),
    ];
    for (field, value) in cases {
        let field: &'static str = field;
        expect_err(
            vec![],
            by(operator(), draft_with(field, value)),
            invalid(field),
        )
        .await;
    }
}

#[tokio::test]
async fn a_contract_may_be_worth_nothing_and_last_one_day() {
    let command = C::DraftContract {
        account_id: PROSPECT,
        title: "Pilot".into(),
        value: Decimal::ZERO,
        currency: "JPY".into(),
        start_date: date(START),
        end_date: date(&days_after(START, 1)),
        terms: "Free pilot.".into(),
    };
    let result = Given::with(Arc::new(Accounts::new()))
        .given_no_previous_events()
        .when_async(by(operator(), command))
        .await
        .inspect_result();
    assert!(result.is_ok(), "{result:?}");
}

#[tokio::test]
async fn draft_needs_an_account_of_the_tenant() {
    for account_id in [Uuid::from_u128(999), FOREIGN] {
        expect_err(vec![], by(operator(), draft_for(account_id)), |e| {
            e == DomainError::NotFound("account")
        })
        .await;
    }
}

#[tokio::test]
async fn suspended_and_closed_accounts_get_no_new_contracts() {
    for (account_id, code) in [
        (SUSPENDED, RuleCode::AccountSuspended),
        (CLOSED, RuleCode::AccountClosed),
    ] {
        expect_err(vec![], by(operator(), draft_for(account_id)), rule(code)).await;
    }
}

/// The draft command for another account.
fn draft_for(account_id: Uuid) -> C {
    match draft_command() {
        C::DraftContract {
            title,
            value,
            currency,
            start_date,
            end_date,
            terms,
            ..
        } => C::DraftContract {
            account_id,
            title,
            value,
            currency,
            start_date,
            end_date,
            terms,
        },
        _ => unreachable!("draft_command builds DraftContract"),
    }
}

#[tokio::test]
async fn draft_twice_is_a_rule_violation() {
    expect_err(
        vec![drafted()],
        by(operator(), draft_command()),
        rule(RuleCode::ContractExists),
    )
    .await;
}

#[tokio::test]
async fn commands_on_an_undrafted_contract_are_not_found() {
    expect_err(vec![], by(operator(), C::SubmitContract {}), |e| {
        e == DomainError::NotFound("contract")
    })
    .await;
}

#[tokio::test]
async fn a_failed_lookup_decides_nothing() {
    let services = Accounts {
        failing: true,
        ..Accounts::new()
    };
    expect_err_with(services, vec![], by(operator(), draft_command()), |e| {
        matches!(e, DomainError::LookupFailed(_))
    })
    .await;
}

// DraftContractFromQuote

#[tokio::test]
async fn the_acceptance_process_drafts_from_a_quote_copying_lines_and_total() {
    expect_events(
        vec![],
        by(system(), from_quote_command(vec![quote_line()])),
        vec![drafted_from_quote()],
    )
    .await;
}

#[tokio::test]
async fn users_cannot_draft_from_a_quote() {
    expect_err(
        vec![],
        by(
            as_role(Role::TenantAdmin),
            from_quote_command(vec![quote_line()]),
        ),
        forbidden,
    )
    .await;
}

#[tokio::test]
async fn draft_from_quote_validates_the_copied_lines() {
    let line = |f: fn(&mut QuoteLine)| {
        let mut line = quote_line();
        f(&mut line);
        vec![line]
    };
    let cases: [(&'static str, Vec<QuoteLine>); 5] = [
        ("lines", vec![]),
        ("lines[0].quantity", line(|l| l.quantity = Decimal::ZERO)),
        (
            "lines[0].unit_price",
            line(|l| l.unit_price = money("-0.01")),
        ),
        (
            "lines[0].volume_discount_percent",
            line(|l| l.volume_discount_percent = money("100.5")),
        ),
        ("lines[0].sku", line(|l| l.sku = " ".into())),
    ];
    for (field, lines) in cases {
        expect_err(
            vec![],
            by(system(), from_quote_command(lines)),
            invalid(field),
        )
        .await;
    }
}

#[tokio::test]
async fn draft_from_quote_respects_the_account_status() {
    let C::DraftContractFromQuote {
        quote_id,
        title,
        lines,
        total,
        currency,
        start_date,
        end_date,
        terms,
        ..
    } = from_quote_command(vec![quote_line()])
    else {
        unreachable!("from_quote_command builds DraftContractFromQuote")
    };
    let command = C::DraftContractFromQuote {
        quote_id,
        account_id: SUSPENDED,
        title,
        lines,
        total,
        currency,
        start_date,
        end_date,
        terms,
    };
    expect_err(
        vec![],
        by(system(), command),
        rule(RuleCode::AccountSuspended),
    )
    .await;
}

#[tokio::test]
async fn the_same_accepted_quote_drafts_its_contract_once() {
    expect_events(
        vec![drafted_from_quote()],
        by(system(), from_quote_command(vec![quote_line()])),
        vec![],
    )
    .await;
    expect_err(
        vec![drafted()],
        by(system(), from_quote_command(vec![quote_line()])),
        rule(RuleCode::ContractExists),
    )
    .await;
}

// AmendContract

fn amend(terms: Option<&str>, value: Option<&str>) -> C {
    C::AmendContract {
        terms: terms.map(Into::into),
        value: value.map(money),
    }
}

#[tokio::test]
async fn each_amendment_is_a_new_version_and_starts_negotiation() {
    expect_events(
        vec![drafted()],
        by(operator(), amend(Some("Net 45."), Some("13000.00"))),
        vec![E::ContractAmended {
            version: 2,
            terms: Some(text("Net 45.")),
            value: Some(money("13000.00")),
        }],
    )
    .await;
    expect_events(
        vec![drafted(), amended(2, "Net 45.")],
        by(operator(), amend(Some("Net 60."), None)),
        vec![amended(3, "Net 60.")],
    )
    .await;
    let mut contract = Contract::default();
    for event in [drafted(), amended(2, "Net 45.")] {
        cqrs_es::Aggregate::apply(&mut contract, event);
    }
    assert_eq!(contract.status(), Some(ContractStatus::Negotiation));
    assert_eq!(contract.version(), 2);
}

#[tokio::test]
async fn an_amendment_carries_only_what_changed() {
    expect_events(
        vec![drafted()],
        by(operator(), amend(Some("Net 30."), Some("12500"))),
        vec![E::ContractAmended {
            version: 2,
            terms: None,
            value: Some(money("12500")),
        }],
    )
    .await;
    expect_events(
        vec![drafted()],
        by(operator(), amend(Some(" Net 30. "), Some("12000"))),
        vec![],
    )
    .await;
}

#[tokio::test]
async fn an_amendment_needs_a_field_and_valid_values() {
    let cases: [(&'static str, C); 3] = [
        ("body", amend(None, None)),
        ("terms", amend(Some("  "), None)),
        ("value", amend(None, Some("-5"))),
    ];
    for (field, command) in cases {
        expect_err(vec![drafted()], by(operator(), command), invalid(field)).await;
    }
}

#[tokio::test]
async fn amendments_stop_at_submission() {
    for history in [
        pending(),
        approved_history(),
        active(),
        with(active(), expired()),
        with(vec![drafted()], terminated()),
    ] {
        expect_err(
            history,
            by(operator(), amend(Some("Net 90."), None)),
            rule(RuleCode::ContractNotAmendable),
        )
        .await;
    }
}

#[tokio::test]
async fn a_rejected_contract_is_amended_into_its_next_version() {
    let rejected = E::ContractRejected {
        approval_id: APPROVAL,
        version: 1,
        reason: text("too cheap"),
    };
    expect_events(
        vec![drafted(), submitted(1), rejected],
        by(operator(), amend(None, Some("15000"))),
        vec![E::ContractAmended {
            version: 2,
            terms: None,
            value: Some(money("15000")),
        }],
    )
    .await;
}

#[tokio::test]
async fn viewers_and_partners_never_amend_submit_or_terminate() {
    for actor in [as_role(Role::Viewer), partner_of(ACCOUNT)] {
        for command in [
            amend(Some("x"), None),
            C::SubmitContract {},
            C::TerminateContract {
                reason: "x".into(),
                effective_date: date(START),
            },
        ] {
            expect_err(vec![drafted()], by(actor.clone(), command), forbidden).await;
        }
    }
}

// SubmitContract

#[tokio::test]
async fn submit_sends_the_current_version_and_value_for_approval() {
    expect_events(
        vec![drafted()],
        by(operator(), C::SubmitContract {}),
        vec![submitted(1)],
    )
    .await;
    expect_events(
        vec![drafted(), amended(2, "Net 45.")],
        by(as_role(Role::Manager), C::SubmitContract {}),
        vec![submitted(2)],
    )
    .await;
}

#[tokio::test]
async fn submit_only_a_draft_or_a_contract_in_negotiation() {
    for history in [pending(), approved_history(), active()] {
        expect_err(
            history,
            by(operator(), C::SubmitContract {}),
            rule(RuleCode::ContractNotSubmittable),
        )
        .await;
    }
}

// MarkContractApproved / MarkContractRejected

fn mark_approved(approval_id: Uuid) -> C {
    C::MarkContractApproved { approval_id }
}

fn mark_rejected(approval_id: Uuid) -> C {
    C::MarkContractRejected {
        approval_id,
        reason: "too cheap".into(),
    }
}

#[tokio::test]
async fn the_approval_outcome_moves_a_pending_contract() {
    expect_events(
        pending(),
        by(system(), mark_approved(APPROVAL)),
        vec![approved()],
    )
    .await;
    let rejected = E::ContractRejected {
        approval_id: APPROVAL,
        version: 1,
        reason: text("too cheap"),
    };
    expect_events(
        pending(),
        by(system(), mark_rejected(APPROVAL)),
        vec![rejected.clone()],
    )
    .await;
    // Rejected goes back to negotiation and may be submitted again.
    expect_events(
        with(pending(), rejected),
        by(operator(), C::SubmitContract {}),
        vec![submitted(1)],
    )
    .await;
}

#[tokio::test]
async fn users_cannot_decide_approval_outcomes() {
    for command in [mark_approved(APPROVAL), mark_rejected(APPROVAL)] {
        expect_err(
            pending(),
            by(as_role(Role::TenantAdmin), command),
            forbidden,
        )
        .await;
    }
}

#[tokio::test]
async fn a_repeated_outcome_changes_nothing() {
    expect_events(
        approved_history(),
        by(system(), mark_approved(APPROVAL)),
        vec![],
    )
    .await;
    // A late copy of an earlier rejection must not reject the new submission.
    let rejected = E::ContractRejected {
        approval_id: APPROVAL,
        version: 1,
        reason: text("too cheap"),
    };
    expect_events(
        vec![drafted(), submitted(1), rejected, submitted(1)],
        by(system(), mark_rejected(APPROVAL)),
        vec![],
    )
    .await;
}

#[tokio::test]
async fn an_outcome_needs_a_pending_submission() {
    for command in [mark_approved(LATER_APPROVAL), mark_rejected(LATER_APPROVAL)] {
        expect_err(
            approved_history(),
            by(system(), command),
            rule(RuleCode::ContractNotPendingApproval),
        )
        .await;
    }
    expect_err(
        vec![drafted()],
        by(system(), mark_approved(APPROVAL)),
        rule(RuleCode::ContractNotPendingApproval),
    )
    .await;
}

#[tokio::test]
async fn a_rejection_has_a_reason() {
    expect_err(
        pending(),
        by(
            system(),
            C::MarkContractRejected {
                approval_id: APPROVAL,
                reason: "".into(),
            },
        ),
        invalid("reason"),
    )
    .await;
}

// SignContract

fn sign(party: Party) -> C {
    C::SignContract {
        party,
        signatory_name: " Pat Signer ".into(),
        signatory_email: "Pat@Globex.test".into(),
    }
}

#[tokio::test]
async fn signing_records_the_signatory_and_the_command_time() {
    let when = on(START) + chrono::Duration::minutes(5);
    let expected = E::ContractSigned {
        party: Party::Vendor,
        signatory_name: text("Pat Signer"),
        signatory_email: Email::parse("e", "pat@globex.test").unwrap(),
        signed_at: when,
    };
    let command = Command::new(TENANT, operator(), when, sign(Party::Vendor));
    expect_events(approved_history(), command, vec![expected]).await;
}

#[tokio::test]
async fn a_partner_signs_only_as_the_customer_of_its_own_account() {
    expect_events(
        approved_history(),
        by(partner_of(ACCOUNT), sign(Party::Customer)),
        vec![signed(Party::Customer)],
    )
    .await;
    // The tenant's staff may record the customer's signature on its behalf.
    expect_events(
        approved_history(),
        by(operator(), sign(Party::Customer)),
        vec![signed(Party::Customer)],
    )
    .await;
    for (actor, party) in [
        (partner_of(ACCOUNT), Party::Vendor),
        (partner_of(PROSPECT), Party::Customer),
        (as_role(Role::Viewer), Party::Customer),
    ] {
        expect_err(approved_history(), by(actor, sign(party)), forbidden).await;
    }
}

#[tokio::test]
async fn contracts_are_signed_only_once_approved() {
    for history in [vec![drafted()], pending(), active()] {
        expect_err(
            history,
            by(operator(), sign(Party::Vendor)),
            rule(RuleCode::ContractNotApproved),
        )
        .await;
    }
}

#[tokio::test]
async fn each_party_signs_once() {
    expect_err(
        with(approved_history(), signed(Party::Vendor)),
        by(operator(), sign(Party::Vendor)),
        rule(RuleCode::AlreadySigned),
    )
    .await;
    expect_events(
        with(approved_history(), signed(Party::Vendor)),
        by(partner_of(ACCOUNT), sign(Party::Customer)),
        vec![signed(Party::Customer)],
    )
    .await;
}

#[tokio::test]
async fn a_signature_names_a_real_signatory() {
    let bad_name = C::SignContract {
        party: Party::Vendor,
        signatory_name: " ".into(),
        signatory_email: "pat@globex.test".into(),
    };
    let bad_email = C::SignContract {
        party: Party::Vendor,
        signatory_name: "Pat".into(),
        signatory_email: "pat".into(),
    };
    expect_err(
        approved_history(),
        by(operator(), bad_name),
        invalid("signatory_name"),
    )
    .await;
    expect_err(
        approved_history(),
        by(operator(), bad_email),
        invalid("signatory_email"),
    )
    .await;
}

// ActivateContract

#[tokio::test]
async fn activation_comes_on_the_start_date_once_approved_and_signed() {
    expect_events(
        signed_history(),
        at(system(), START, C::ActivateContract {}),
        vec![activated()],
    )
    .await;
    let late = days_after(START, 3);
    expect_events(
        signed_history(),
        at(system(), &late, C::ActivateContract {}),
        vec![E::ContractActivated {
            account_id: ACCOUNT,
            activated_on: date(&late),
        }],
    )
    .await;
    expect_err(
        signed_history(),
        at(system(), &days_before(START, 1), C::ActivateContract {}),
        rule(RuleCode::BeforeStartDate),
    )
    .await;
}

#[tokio::test]
async fn activation_needs_both_signatures_and_an_approval() {
    expect_err(
        with(approved_history(), signed(Party::Customer)),
        by(system(), C::ActivateContract {}),
        rule(RuleCode::ContractNotSigned),
    )
    .await;
    expect_err(
        pending(),
        by(system(), C::ActivateContract {}),
        rule(RuleCode::ContractNotApproved),
    )
    .await;
}

#[tokio::test]
async fn activation_is_the_timers_and_happens_once() {
    expect_err(
        signed_history(),
        by(as_role(Role::TenantAdmin), C::ActivateContract {}),
        forbidden,
    )
    .await;
    expect_events(active(), by(system(), C::ActivateContract {}), vec![]).await;
}

// RenewContract

fn renew(new_end_date: &str, new_value: &str) -> C {
    C::RenewContract {
        new_end_date: date(new_end_date),
        new_value: money(new_value),
    }
}

fn renewed(term: u32, previous_end: &str, new_end: &str, reactivated: bool) -> E {
    E::ContractRenewed {
        account_id: ACCOUNT,
        term,
        previous_end_date: date(previous_end),
        new_end_date: date(new_end),
        new_value: money("13000.00"),
        currency: eur(),
        reactivated,
    }
}

#[tokio::test]
async fn an_active_contract_is_renewed_with_a_new_term() {
    let manager = as_role(Role::Manager);
    expect_events(
        active(),
        at(
            manager.clone(),
            "2026-01-15",
            renew("2027-02-28", "13000.00"),
        ),
        vec![renewed(2, END, "2027-02-28", false)],
    )
    .await;
    expect_events(
        with(active(), renewed(2, END, "2027-02-28", false)),
        at(manager, "2027-01-15", renew("2028-02-29", "13000.00")),
        vec![renewed(3, "2027-02-28", "2028-02-29", false)],
    )
    .await;
}

#[tokio::test]
async fn an_expired_contract_is_renewed_within_30_days_after_its_end() {
    let last_day = days_after(END, 30);
    expect_events(
        with(active(), expired()),
        at(
            as_role(Role::TenantAdmin),
            &last_day,
            renew("2027-02-28", "13000.00"),
        ),
        vec![renewed(2, END, "2027-02-28", true)],
    )
    .await;
    expect_err(
        with(active(), expired()),
        at(
            as_role(Role::TenantAdmin),
            &days_after(END, 31),
            renew("2027-02-28", "13000.00"),
        ),
        rule(RuleCode::RenewalWindowClosed),
    )
    .await;
    let mut contract = Contract::default();
    for event in with(
        with(active(), expired()),
        renewed(2, END, "2027-02-28", true),
    ) {
        cqrs_es::Aggregate::apply(&mut contract, event);
    }
    assert_eq!(contract.status(), Some(ContractStatus::Active));
}

#[tokio::test]
async fn only_active_or_recently_expired_contracts_are_renewed() {
    for history in [
        vec![drafted()],
        approved_history(),
        with(active(), terminated()),
    ] {
        expect_err(
            history,
            by(as_role(Role::Manager), renew("2027-02-28", "1")),
            rule(RuleCode::ContractNotRenewable),
        )
        .await;
    }
}

#[tokio::test]
async fn a_renewal_ends_later_and_in_the_future_at_a_valid_value() {
    let manager = as_role(Role::Manager);
    expect_err(
        active(),
        at(manager.clone(), "2026-01-15", renew(END, "1")),
        invalid("new_end_date"),
    )
    .await;
    // Renewed 20 days after expiry, a new end 10 days after the old one is already past.
    expect_err(
        with(active(), expired()),
        at(
            manager.clone(),
            &days_after(END, 20),
            renew(&days_after(END, 10), "1"),
        ),
        invalid("new_end_date"),
    )
    .await;
    expect_err(
        active(),
        at(manager, "2026-01-15", renew("2027-02-28", "-1")),
        invalid("new_value"),
    )
    .await;
}

#[tokio::test]
async fn renewal_is_for_managers_and_admins() {
    for actor in [operator(), as_role(Role::Viewer), partner_of(ACCOUNT)] {
        expect_err(
            active(),
            at(actor, "2026-01-15", renew("2027-02-28", "13000.00")),
            forbidden,
        )
        .await;
    }
}

// TerminateContract

fn terminate(reason: &str, effective_date: &str) -> C {
    C::TerminateContract {
        reason: reason.into(),
        effective_date: date(effective_date),
    }
}

#[tokio::test]
async fn terminate_records_reason_and_effective_date() {
    let effective = "2025-06-30";
    let expected = E::ContractTerminated {
        account_id: ACCOUNT,
        reason: text("breach"),
        effective_date: date(effective),
    };
    expect_events(
        active(),
        at(operator(), "2025-06-01", terminate(" breach ", effective)),
        vec![expected],
    )
    .await;
}

/// DOMAIN.md: "terminate (an active contract only)".
#[tokio::test]
async fn only_an_active_contract_terminates() {
    let negotiation = with(vec![drafted()], amended(2, "New terms"));
    for history in [vec![drafted()], negotiation, pending(), approved_history()] {
        expect_err(
            history,
            at(operator(), "2025-06-01", terminate("x", "2025-06-30")),
            rule(RuleCode::ContractNotActive),
        )
        .await;
    }
    for history in [
        with(active(), expired()),
        with(active(), terminated()),
        with(vec![drafted()], cancelled()),
    ] {
        expect_err(
            history,
            at(operator(), END, terminate("x", END)),
            rule(RuleCode::ContractEnded),
        )
        .await;
    }
}

#[tokio::test]
async fn termination_takes_effect_between_today_and_the_end_date() {
    for effective in ["2025-05-31", &days_after(END, 1)] {
        expect_err(
            active(),
            at(operator(), "2025-06-01", terminate("x", effective)),
            invalid("effective_date"),
        )
        .await;
    }
    expect_err(
        active(),
        at(operator(), "2025-06-01", terminate(" ", END)),
        invalid("reason"),
    )
    .await;
    expect_events(
        active(),
        at(operator(), "2025-06-01", terminate("breach", END)),
        vec![E::ContractTerminated {
            account_id: ACCOUNT,
            reason: text("breach"),
            effective_date: date(END),
        }],
    )
    .await;
}

// ExpireContract

#[tokio::test]
async fn an_active_contract_expires_on_its_end_date() {
    expect_events(
        active(),
        at(system(), END, C::ExpireContract {}),
        vec![expired()],
    )
    .await;
    expect_err(
        active(),
        at(system(), &days_before(END, 1), C::ExpireContract {}),
        rule(RuleCode::BeforeEndDate),
    )
    .await;
    // After a renewal the old end date no longer ends it.
    expect_err(
        with(active(), renewed(2, END, "2027-02-28", false)),
        at(system(), END, C::ExpireContract {}),
        rule(RuleCode::BeforeEndDate),
    )
    .await;
}

#[tokio::test]
async fn expiry_is_the_timers_and_changes_nothing_once_ended() {
    expect_err(
        active(),
        at(as_role(Role::TenantAdmin), END, C::ExpireContract {}),
        forbidden,
    )
    .await;
    for history in [with(active(), expired()), with(active(), terminated())] {
        expect_events(history, at(system(), END, C::ExpireContract {}), vec![]).await;
    }
    expect_err(
        approved_history(),
        at(system(), END, C::ExpireContract {}),
        rule(RuleCode::ContractNotActive),
    )
    .await;
}

// Wire format

#[test]
fn commands_parse_from_the_wire_format_and_reject_unknown_fields() {
    let draft: C = serde_json::from_str(
        r#"{"DraftContract":{"account_id":"00000000-0000-0000-0000-000000000064",
            "title":" Support 2025 ","value":"12000.00","currency":"eur",
            "start_date":"2025-03-01","end_date":"2026-02-28","terms":"Net 30."}}"#,
    )
    .unwrap();
    assert_eq!(draft, draft_command());
    assert_eq!(draft.name(), "DraftContract");
    let amend_terms: C = serde_json::from_str(r#"{"AmendContract":{"terms":"Net 45."}}"#).unwrap();
    assert_eq!(amend_terms, amend(Some("Net 45."), None));
    let sign_json: C = serde_json::from_str(
        r#"{"SignContract":{"party":"Customer","signatory_name":"Pat","signatory_email":"p@g.test"}}"#,
    )
    .unwrap();
    assert_eq!(sign_json.name(), "SignContract");
    assert!(serde_json::from_str::<C>(r#"{"SubmitContract":{"version":1}}"#).is_err());
    assert!(serde_json::from_str::<C>(
        r#"{"RenewContract":{"new_end_date":"2027-02-30","new_value":"1"}}"#
    )
    .is_err());
    assert!(serde_json::from_str::<C>(
        r#"{"SignContract":{"party":"Witness","signatory_name":"P","signatory_email":"p@g.test"}}"#
    )
    .is_err());
}

#[test]
fn events_keep_money_as_strings_and_dates_as_iso_8601() {
    let json = serde_json::to_value(drafted()).unwrap();
    assert_eq!(json["ContractDrafted"]["value"], "12000.00");
    assert_eq!(json["ContractDrafted"]["start_date"], "2025-03-01");
    let back: E = serde_json::from_value(json).unwrap();
    assert_eq!(back, drafted());
}

fn cancelled() -> E {
    E::ContractCancelled {
        reason: text("abandoned"),
    }
}

fn cancel(reason: &str) -> C {
    C::CancelContract {
        reason: reason.into(),
    }
}

#[tokio::test]
async fn a_draft_or_negotiated_contract_is_cancelled_and_then_takes_no_command() {
    let negotiation = with(vec![drafted()], amended(2, "New terms"));
    for history in [vec![drafted()], negotiation] {
        expect_events(
            history.clone(),
            by(operator(), cancel(" abandoned ")),
            vec![cancelled()],
        )
        .await;
        expect_err(
            history.clone(),
            by(operator(), cancel(" ")),
            invalid("reason"),
        )
        .await;
        for actor in [as_role(Role::Viewer), partner_of(ACCOUNT)] {
            expect_err(history.clone(), by(actor, cancel("x")), forbidden).await;
        }
        let gone = with(history, cancelled());
        expect_err(gone.clone(), by(operator(), C::SubmitContract {}), |_| true).await;
        expect_err(
            gone,
            by(operator(), cancel("again")),
            rule(RuleCode::ContractNotDraft),
        )
        .await;
    }
}

#[tokio::test]
async fn an_approved_contract_never_activated_is_cancelled_and_its_activation_then_refused() {
    for history in [approved_history(), signed_history()] {
        expect_events(
            history.clone(),
            by(operator(), cancel("abandoned")),
            vec![cancelled()],
        )
        .await;
        let gone = with(history, cancelled());
        expect_err(
            gone,
            at(system(), END, C::ActivateContract {}),
            rule(RuleCode::ContractNotApproved),
        )
        .await;
    }
}

#[tokio::test]
async fn a_submitted_or_active_contract_is_not_cancelled() {
    for history in [pending(), active()] {
        expect_err(
            history,
            by(operator(), cancel("x")),
            rule(RuleCode::ContractNotDraft),
        )
        .await;
    }
}

#[tokio::test]
async fn a_contract_is_drafted_only_in_a_currency_the_tenant_trades_in() {
    let in_currency = |currency: &str| C::DraftContract {
        account_id: ACCOUNT,
        title: "Support".into(),
        value: money("1000.00"),
        currency: currency.into(),
        start_date: date(START),
        end_date: date(END),
        terms: "Net 30".into(),
    };
    expect_err(
        vec![],
        by(operator(), in_currency("XAU")),
        invalid("currency"),
    )
    .await;
    expect_err(
        vec![],
        by(operator(), in_currency("SEK")),
        rule(RuleCode::CurrencyNotAllowed),
    )
    .await;
}

/// A contract always goes through approval: without a chain for its amount it would wait for
/// ever, so submission refuses it, as a quote's does.
#[tokio::test]
async fn a_contract_without_an_approval_chain_for_its_currency_is_not_submitted() {
    struct NoChains;
    #[async_trait]
    impl ContractServices for NoChains {
        async fn account(&self, _: Uuid, _: Uuid) -> Result<Option<AccountFacts>, DomainError> {
            Ok(None)
        }

        async fn policy(&self, _tenant_id: Uuid) -> Result<TenantPolicy, DomainError> {
            let mut policy = TenantPolicy::default();
            policy.currencies.remove("EUR");
            Ok(policy)
        }
    }
    let result = Given::with(Arc::new(NoChains))
        .given(vec![drafted()])
        .when_async(by(operator(), C::SubmitContract {}))
        .await
        .inspect_result();
    assert!(
        matches!(result, Err(ref e) if rule(RuleCode::NoApprovalChain)(e.clone())),
        "{result:?}"
    );
}
