//! The access matrix, against the real binary: every command collection called as each role of
//! two tenants (allowed → 200, denied → 403 with `/problems/forbidden` and nothing appended,
//! another tenant's id → 404), then every GraphQL query asked as each role, checking exactly
//! which ids each caller sees.
use std::collections::{BTreeSet, HashMap};

use chrono::SecondsFormat;
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{eventually, open_account, problem, Api, Process, Tenant, TestStack};

const MEMBER_PASSWORD: &str = "matrix password 42";

/// Who calls. `ManagerLow` is a second Manager whose approval limit (100 EUR) is below the
/// approvals' amount (850 EUR). `Partner` is linked to `acc1`, `Partner2` to `acc2`; the
/// `Other*` callers belong to the second tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Who {
    Admin,
    Manager,
    ManagerLow,
    Operator,
    Viewer,
    Partner,
    Partner2,
    OtherAdmin,
    OtherPartner,
}
use Who::*;

const EVERYONE: [Who; 9] = [
    Admin,
    Manager,
    ManagerLow,
    Operator,
    Viewer,
    Partner,
    Partner2,
    OtherAdmin,
    OtherPartner,
];

/// Two tenants with one user per role, accounts, draft quotes, two pending approvals (one
/// requested by the Operator, one by the Manager) and draft contracts.
struct Fx {
    stack: TestStack,
    _server: Process,
    api: Api,
    a: Tenant,
    b: Tenant,
    users: HashMap<Who, (Uuid, String)>,
    acc1: Uuid,
    acc2: Uuid,
    acc_b: Uuid,
    /// Draft quotes with one line, on acc1 and acc2.
    q1: Uuid,
    q2: Uuid,
    /// Submitted quotes (850 EUR after a 15 % discount, so one Manager level): qa on acc1 by
    /// the Operator, qb on acc2 by the Manager.
    qa: Uuid,
    qb: Uuid,
    appr_a: Uuid,
    appr_b: Uuid,
    /// Draft contracts on acc1 and acc2.
    c1: Uuid,
    c2: Uuid,
}

impl Fx {
    fn token(&self, who: Who) -> &str {
        &self.users[&who].1
    }

    fn id(&self, who: Who) -> Uuid {
        self.users[&who].0
    }

    fn tenant(&self, who: Who) -> &Tenant {
        match who {
            OtherAdmin | OtherPartner => &self.b,
            _ => &self.a,
        }
    }

    fn account_of(&self, who: Who) -> Option<Uuid> {
        match who {
            Partner => Some(self.acc1),
            Partner2 => Some(self.acc2),
            OtherPartner => Some(self.acc_b),
            _ => None,
        }
    }
}

async fn setup() -> Fx {
    let stack = TestStack::new().await;
    let a = stack.create_tenant("matrixa").await;
    let b = stack.create_tenant("matrixb").await;
    let admin_a_id = only_user(&stack, &a).await;
    let admin_b_id = only_user(&stack, &b).await;
    // `serve`, not `command-api`: approvals are requested by a process manager.
    let server = stack.spawn(&["serve"]).await;
    let api = Api::new(&server);
    let admin = api.login(&a).await;
    let admin_b = api.login(&b).await;

    let (acc1, acc2, acc_b) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    api.ok(&admin, acc1, open_account("Hooli")).await;
    api.ok(&admin, acc2, open_account("Initech")).await;
    api.ok(&admin_b, acc_b, open_account("Umbrella")).await;

    let mut users = HashMap::new();
    users.insert(Admin, (admin_a_id, admin.clone()));
    users.insert(OtherAdmin, (admin_b_id, admin_b.clone()));
    let members = [
        (
            Manager,
            &a,
            &admin,
            "manager@matrixa.test",
            "Manager",
            None,
            Some("1000000.00"),
        ),
        (
            ManagerLow,
            &a,
            &admin,
            "junior@matrixa.test",
            "Manager",
            None,
            Some("100.00"),
        ),
        (
            Operator,
            &a,
            &admin,
            "ops@matrixa.test",
            "Operator",
            None,
            None,
        ),
        (
            Viewer,
            &a,
            &admin,
            "viewer@matrixa.test",
            "Viewer",
            None,
            None,
        ),
        (
            Partner,
            &a,
            &admin,
            "buyer@hooli.test",
            "Partner",
            Some(acc1),
            None,
        ),
        (
            Partner2,
            &a,
            &admin,
            "buyer@initech.test",
            "Partner",
            Some(acc2),
            None,
        ),
        (
            OtherPartner,
            &b,
            &admin_b,
            "buyer@umbrella.test",
            "Partner",
            Some(acc_b),
            None,
        ),
    ];
    for (who, tenant, by, email, role, account, limit) in members {
        let joined = member(&api, tenant, by, email, role, account, limit).await;
        users.insert(who, joined);
    }

    let q1 = draft_quote(&api, &admin, acc1, "250.00").await;
    let q2 = draft_quote(&api, &admin, acc2, "250.00").await;
    let qa = pending_quote(&api, &users[&Operator].1, acc1).await;
    let qb = pending_quote(&api, &users[&Manager].1, acc2).await;
    let appr_a = approval_of(&stack, qa).await;
    let appr_b = approval_of(&stack, qb).await;
    let (c1, c2) = (Uuid::new_v4(), Uuid::new_v4());
    api.ok_in(&admin, "contracts", c1, draft_contract(acc1))
        .await;
    api.ok_in(&admin, "contracts", c2, draft_contract(acc2))
        .await;

    Fx {
        stack,
        _server: server,
        api,
        a,
        b,
        users,
        acc1,
        acc2,
        acc_b,
        q1,
        q2,
        qa,
        qb,
        appr_a,
        appr_b,
        c1,
        c2,
    }
}

// ---------------------------------------------------------------------------------------------
// Small local helpers (not in helpers.rs)
// ---------------------------------------------------------------------------------------------

/// The tenant's first TenantAdmin, before anyone else is registered.
async fn only_user(stack: &TestStack, tenant: &Tenant) -> Uuid {
    sqlx::query_scalar("select user_id from user_credentials where tenant_id = $1")
        .bind(tenant.id)
        .fetch_one(&stack.db)
        .await
        .unwrap()
}

/// Registers a user (by a TenantAdmin, with a password, as scenario.rs does), optionally sets
/// their approval limit in EUR, and signs them in.
async fn member(
    api: &Api,
    tenant: &Tenant,
    admin: &str,
    email: &str,
    role: &str,
    account_id: Option<Uuid>,
    limit: Option<&str>,
) -> (Uuid, String) {
    let id = Uuid::new_v4();
    api.ok_in(admin, "users", id, register_user(email, role, account_id))
        .await;
    if let Some(amount) = limit {
        let body = json!({"type": "SetApprovalLimit", "amount": amount, "currency": "EUR"});
        api.ok_in(admin, "users", id, body).await;
    }
    let response = api.login_as(tenant, email, MEMBER_PASSWORD).await;
    assert_eq!(response.status(), StatusCode::OK, "sign-in of {email}");
    let body: Value = response.json().await.unwrap();
    (id, body["access_token"].as_str().unwrap().to_owned())
}

fn register_user(email: &str, role: &str, account_id: Option<Uuid>) -> Value {
    json!({"type": "RegisterUser", "email": email, "display_name": email, "roles": [role],
        "account_id": account_id, "password": MEMBER_PASSWORD})
}

fn draft_quote_body(account: Uuid) -> Value {
    let valid_until = (chrono::Utc::now() + chrono::Duration::days(30)).to_rfc3339();
    json!({"type": "DraftQuote", "account_id": account, "title": "Matrix", "valid_until": valid_until})
}

fn add_line(unit_price: &str) -> Value {
    json!({"type": "AddLineItem", "line_id": Uuid::new_v4(), "sku": "M-1",
        "description": "Matrix item", "quantity": "1", "unit_price": unit_price})
}

fn draft_contract(account: Uuid) -> Value {
    json!({"type": "DraftContract", "account_id": account, "title": "Supply", "value": "5000.00",
        "currency": "EUR", "start_date": "2030-01-01", "end_date": "2030-12-31", "terms": "Net 30"})
}

/// A draft quote with one line of 1 × `unit_price` (no volume discount at quantity 1).
async fn draft_quote(api: &Api, token: &str, account: Uuid, unit_price: &str) -> Uuid {
    let id = Uuid::new_v4();
    api.ok_in(token, "quotes", id, draft_quote_body(account))
        .await;
    api.ok_in(token, "quotes", id, add_line(unit_price)).await;
    id
}

/// Submitted by `token`'s user: 1000.00 less 15 % = 850.00 EUR. The discount above 10 % needs
/// approval; 850 is in the first band, so the chain is one Manager level.
async fn pending_quote(api: &Api, token: &str, account: Uuid) -> Uuid {
    let id = draft_quote(api, token, account, "1000.00").await;
    let discount = json!({"type": "SetQuoteDiscount", "percent": "15", "reason": "Strategic"});
    api.ok_in(token, "quotes", id, discount).await;
    api.ok_in(token, "quotes", id, json!({"type": "SubmitQuote"}))
        .await;
    id
}

/// A quote in status Sent (100.00 EUR: approved on submission), ready to be answered.
async fn sent_quote(api: &Api, admin: &str, account: Uuid) -> Uuid {
    let id = draft_quote(api, admin, account, "100.00").await;
    api.ok_in(admin, "quotes", id, json!({"type": "SubmitQuote"}))
        .await;
    api.ok_in(admin, "quotes", id, json!({"type": "SendQuote"}))
        .await;
    id
}

/// The approval the process manager requested for `quote`, read from the event store (no
/// read model involved).
async fn approval_of(stack: &TestStack, quote: Uuid) -> Uuid {
    eventually("the approval request", || async {
        sqlx::query_scalar::<_, String>(
            "select aggregate_id from events where event_type = 'ApprovalRequested' \
             and payload -> 'ApprovalRequested' -> 'subject' ->> 'id' = $1",
        )
        .bind(quote.to_string())
        .fetch_optional(&stack.db)
        .await
        .unwrap()
        .map(|id| id.parse().unwrap())
    })
    .await
}

/// Events appended on behalf of a user. Process managers and timers (system actors) keep
/// appending in the background (approval outcomes, contracts drafted from accepted quotes), so
/// a plain `count(*)` could move between two cases; a refused command is a user's, and would
/// show here.
async fn user_events(stack: &TestStack) -> i64 {
    sqlx::query_scalar("select count(*) from events where metadata ->> 'user_id' is not null")
        .fetch_one(&stack.db)
        .await
        .unwrap()
}

async fn stream_len(stack: &TestStack, id: Uuid) -> i64 {
    sqlx::query_scalar("select count(*) from events where aggregate_id = $1")
        .bind(id.to_string())
        .fetch_one(&stack.db)
        .await
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// Commands
// ---------------------------------------------------------------------------------------------

/// Which aggregate a case addresses.
#[derive(Debug, Clone, Copy)]
enum Target {
    /// A fresh id (creating commands).
    New,
    At(Uuid),
    /// A fresh quote in status Sent on this account, made by the TenantAdmin just before.
    SentQuote(Uuid),
}
use Target::{At, New, SentQuote};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Allowed,
    /// 403 `/problems/forbidden`.
    Denied,
    /// 404 `/problems/not-found`.
    Missing,
    /// 400 `/problems/validation` naming this field.
    Invalid(&'static str),
    /// 422 `/problems/rule-violated/<code>`: the role passed, the state or data did not.
    Rule(&'static str),
}
use Expect::{Allowed, Denied, Invalid, Missing, Rule};

impl Expect {
    fn status(self) -> StatusCode {
        match self {
            Allowed => StatusCode::OK,
            Denied => StatusCode::FORBIDDEN,
            Missing => StatusCode::NOT_FOUND,
            Invalid(_) => StatusCode::BAD_REQUEST,
            Rule(_) => StatusCode::UNPROCESSABLE_ENTITY,
        }
    }

    fn problem_type(self) -> String {
        match self {
            Allowed => unreachable!("no problem for an allowed command"),
            Denied => "/problems/forbidden".into(),
            Missing => "/problems/not-found".into(),
            Invalid(_) => "/problems/validation".into(),
            Rule(code) => format!("/problems/rule-violated/{code}"),
        }
    }
}

struct Case {
    who: Who,
    collection: &'static str,
    target: Target,
    body: Value,
    expect: Expect,
    /// A part of the problem's `detail`, for attribute rules whose reason matters.
    detail: Option<&'static str>,
}

fn case(who: Who, collection: &'static str, target: Target, body: Value, expect: Expect) -> Case {
    Case {
        who,
        collection,
        target,
        body,
        expect,
        detail: None,
    }
}

impl Case {
    fn saying(mut self, detail: &'static str) -> Self {
        self.detail = Some(detail);
        self
    }
}

/// The table. Order matters only where a case changes what a later one meets (noted inline):
/// refusals on an approval come before the approval is granted.
fn command_cases(fx: &Fx) -> Vec<Case> {
    let staff_write = [
        (Admin, Allowed),
        (Manager, Allowed),
        (Operator, Allowed),
        (Viewer, Denied),
        (Partner, Denied),
    ];
    let mut cases = Vec::new();

    // accounts: Open/UpdateAccountDetails = TenantAdmin, Manager, Operator;
    // ChangeTier/SetCreditLimit/SetApiQuota/Suspend/Reinstate/Close = TenantAdmin, Manager.
    for (who, expect) in staff_write {
        cases.push(case(
            who,
            "accounts",
            New,
            open_account("Matrix Co"),
            expect,
        ));
        // A Partner may not edit even its own account.
        let rename = json!({"type": "UpdateAccountDetails", "name": format!("Hooli {who:?}")});
        cases.push(case(who, "accounts", At(fx.acc1), rename, expect));
    }
    for (who, expect) in [
        (Admin, Allowed),
        (Manager, Allowed),
        (Operator, Denied),
        (Viewer, Denied),
        (Partner, Denied),
    ] {
        let limit = json!({"type": "SetCreditLimit", "amount": "5000.00"});
        cases.push(case(who, "accounts", At(fx.acc1), limit, expect));
    }
    let activate = json!({"type": "ActivateAccount", "quote_id": fx.q2});
    cases.push(case(Admin, "accounts", At(fx.acc2), activate, Denied).saying("done by the system"));
    let hijack = json!({"type": "UpdateAccountDetails", "name": "Hijack"});
    cases.push(case(
        OtherAdmin,
        "accounts",
        At(fx.acc1),
        hijack.clone(),
        Missing,
    ));
    cases.push(case(OtherPartner, "accounts", At(fx.acc1), hijack, Missing));
    cases.push(case(
        OtherAdmin,
        "accounts",
        At(fx.acc1),
        open_account("Hijack"),
        Missing,
    ));

    // users: everything but ChangeEmail/ChangePassword is TenantAdmin only; those two are
    // also the user themself.
    for (n, (who, expect)) in [
        (Admin, Allowed),
        (Manager, Denied),
        (Operator, Denied),
        (Viewer, Denied),
        (Partner, Denied),
    ]
    .into_iter()
    .enumerate()
    {
        let body = register_user(&format!("new{n}@matrixa.test"), "Viewer", None);
        cases.push(case(who, "users", New, body, expect));
    }
    let unlinked = register_user("nolink@matrixa.test", "Partner", None);
    cases.push(case(
        Admin,
        "users",
        New,
        unlinked,
        Rule("partner_needs_account"),
    ));
    let mut mixed = register_user("mixed@matrixa.test", "Partner", None);
    mixed["roles"] = json!(["Partner", "Viewer"]);
    cases.push(case(Admin, "users", New, mixed, Invalid("roles")));
    let taken = register_user("manager@matrixa.test", "Viewer", None);
    cases.push(case(
        Admin,
        "users",
        New,
        taken.clone(),
        Rule("email_in_use"),
    ));
    // E-mails are unique per tenant only.
    cases.push(case(OtherAdmin, "users", New, taken, Allowed));
    // Tenant B cannot link a Partner to tenant A's account.
    let spy = register_user("spy@matrixb.test", "Partner", Some(fx.acc1));
    cases.push(case(OtherAdmin, "users", New, spy, Missing).saying("no such account"));
    for (who, expect) in [
        (Admin, Allowed),
        (Manager, Denied),
        (Operator, Denied), // not even their own limit
        (Viewer, Denied),
        (Partner, Denied),
        (OtherAdmin, Missing),
    ] {
        let limit = json!({"type": "SetApprovalLimit", "amount": "2500.00", "currency": "EUR"});
        cases.push(case(who, "users", At(fx.id(Operator)), limit, expect));
    }
    let viewer_limit = json!({"type": "SetApprovalLimit", "amount": "1.00", "currency": "EUR"});
    cases.push(case(
        Admin,
        "users",
        At(fx.id(Viewer)),
        viewer_limit,
        Rule("not_an_approver"),
    ));
    for (who, email, expect) in [
        (Manager, "m@matrixa.test", Denied),
        (Viewer, "v@matrixa.test", Denied),
        (Partner, "p@matrixa.test", Denied),
        (OtherAdmin, "b@matrixa.test", Missing),
        (Operator, "ops.self@matrixa.test", Allowed),
        (Admin, "ops.admin@matrixa.test", Allowed),
    ] {
        let change = json!({"type": "ChangeEmail", "email": email});
        cases.push(case(who, "users", At(fx.id(Operator)), change, expect));
    }
    for (who, email) in [
        (Partner, "buyer.new@hooli.test"),
        (Viewer, "viewer.new@matrixa.test"),
    ] {
        let change = json!({"type": "ChangeEmail", "email": email});
        cases.push(case(who, "users", At(fx.id(who)), change, Allowed));
    }
    let promote = json!({"type": "ChangeRoles", "roles": ["Operator"]});
    cases.push(case(Manager, "users", At(fx.id(Viewer)), promote, Denied));
    let deactivate = json!({"type": "DeactivateUser", "reason": "matrix"});
    cases.push(case(
        Manager,
        "users",
        At(fx.id(Partner2)),
        deactivate.clone(),
        Denied,
    ));
    cases.push(case(
        Operator,
        "users",
        At(fx.id(Partner2)),
        deactivate,
        Denied,
    ));
    // Denied, so the password must not be stored either (checked after the loop).
    let reset = json!({"type": "ChangePassword", "password": "stolen password 99"});
    cases.push(case(Manager, "users", At(fx.id(Operator)), reset, Denied));
    let relink = json!({"type": "LinkPartnerAccount", "account_id": fx.acc1});
    cases.push(case(Partner, "users", At(fx.id(Partner2)), relink, Denied));

    // quotes: drafting and editing = TenantAdmin, Manager, Operator; answering (Accept/Decline)
    // = those or a Partner of the quote's account; Mark*/Expire = system only.
    for (who, expect) in staff_write {
        cases.push(case(who, "quotes", New, draft_quote_body(fx.acc1), expect));
        cases.push(case(who, "quotes", At(fx.q1), add_line("10.00"), expect));
    }
    let foreign_draft = draft_quote_body(fx.acc1);
    cases.push(case(OtherAdmin, "quotes", New, foreign_draft, Missing).saying("no such account"));
    cases.push(case(
        OtherAdmin,
        "quotes",
        At(fx.q1),
        add_line("10.00"),
        Missing,
    ));
    cases.push(case(
        Viewer,
        "quotes",
        At(fx.q1),
        json!({"type": "SubmitQuote"}),
        Denied,
    ));
    cases.push(case(
        Admin,
        "quotes",
        At(fx.q1),
        json!({"type": "ExpireQuote"}),
        Denied,
    ));
    let mark = json!({"type": "MarkQuoteApproved", "approval_id": fx.appr_a});
    cases.push(case(Admin, "quotes", At(fx.q1), mark, Denied));
    for (who, account, expect) in [
        (Partner, fx.acc1, Allowed),
        (Operator, fx.acc1, Allowed), // on the account's behalf
        (Manager, fx.acc1, Allowed),
        (Admin, fx.acc1, Allowed),
        (Viewer, fx.acc1, Denied),
        (Partner2, fx.acc1, Denied), // a Partner of another account
        (Partner, fx.acc2, Denied),
        (OtherAdmin, fx.acc1, Missing),
    ] {
        let accept = json!({"type": "AcceptQuote"});
        cases.push(case(who, "quotes", SentQuote(account), accept, expect));
    }
    let decline = json!({"type": "DeclineQuote", "reason": "too expensive"});
    cases.push(case(
        Partner,
        "quotes",
        SentQuote(fx.acc1),
        decline.clone(),
        Allowed,
    ));
    cases.push(case(
        Partner2,
        "quotes",
        SentQuote(fx.acc1),
        decline,
        Denied,
    ));

    // approvals: ApproveLevel/RejectApproval = holds the level's role (Manager here) with a
    // limit covering 850 EUR and did not request it; DelegateLevel = the level's approver or a
    // TenantAdmin, never the requester; CancelApproval = the requester only;
    // RequestApproval/EscalateLevel = system only.
    let approve = json!({"type": "ApproveLevel"});
    for (who, why) in [
        (Operator, "the requester cannot approve their own request"),
        (Viewer, "the level needs the role Manager"),
        (Partner, "the level needs the role Manager"),
        (Admin, "the level needs the role Manager"), // TenantAdmin is not Manager
        (ManagerLow, "is below"),                    // limit 100.00 < 850.00
    ] {
        cases.push(case(who, "approvals", At(fx.appr_a), approve.clone(), Denied).saying(why));
    }
    cases.push(case(
        OtherAdmin,
        "approvals",
        At(fx.appr_a),
        approve.clone(),
        Missing,
    ));
    let reject = json!({"type": "RejectApproval", "reason": "no"});
    cases.push(case(Viewer, "approvals", At(fx.appr_a), reject, Denied));
    let cancel = json!({"type": "CancelApproval", "reason": "not needed"});
    for who in [Manager, Admin] {
        let refused = case(who, "approvals", At(fx.appr_a), cancel.clone(), Denied);
        cases.push(refused.saying("only the requester"));
    }
    let request = json!({"type": "RequestApproval", "subject_type": "Quote", "subject_id": fx.q1,
        "subject_version": 2, "amount": "250.00", "currency": "EUR",
        "requester_id": fx.id(Admin)});
    cases.push(case(Admin, "approvals", New, request, Denied).saying("done by the system"));
    let delegate = json!({"type": "DelegateLevel", "to_user_id": fx.id(Manager)});
    cases.push(case(
        Operator,
        "approvals",
        At(fx.appr_a),
        delegate.clone(),
        Denied,
    ));
    cases.push(case(
        Viewer,
        "approvals",
        At(fx.appr_a),
        delegate.clone(),
        Denied,
    ));
    // From here on appr_a's level is delegated to the Manager.
    cases.push(case(Admin, "approvals", At(fx.appr_a), delegate, Allowed));
    let junior = case(
        ManagerLow,
        "approvals",
        At(fx.appr_a),
        approve.clone(),
        Denied,
    );
    cases.push(junior.saying("delegated to another user"));
    cases.push(case(
        Manager,
        "approvals",
        At(fx.appr_a),
        approve.clone(),
        Allowed,
    ));
    // Granted now: a closed approval is a 422 for everyone (even roles that would be 403).
    cases.push(case(
        Manager,
        "approvals",
        At(fx.appr_a),
        approve.clone(),
        Rule("approval_closed"),
    ));
    // appr_b was requested by the Manager.
    let own = case(Manager, "approvals", At(fx.appr_b), approve, Denied);
    cases.push(own.saying("the requester cannot approve their own request"));
    cases.push(case(
        Operator,
        "approvals",
        At(fx.appr_b),
        cancel.clone(),
        Denied,
    ));
    cases.push(case(
        Admin,
        "approvals",
        At(fx.appr_b),
        cancel.clone(),
        Denied,
    ));
    cases.push(case(Manager, "approvals", At(fx.appr_b), cancel, Allowed));

    // contracts: Draft/Amend/Submit/Terminate = TenantAdmin, Manager, Operator; Renew =
    // TenantAdmin, Manager; Sign = those three for either party, or a Partner of the
    // contract's account as the Customer; Activate/Expire/Mark* = system only.
    for (n, (who, expect)) in staff_write.into_iter().enumerate() {
        cases.push(case(who, "contracts", New, draft_contract(fx.acc1), expect));
        let amend = json!({"type": "AmendContract", "terms": format!("Net {}", 31 + n)});
        cases.push(case(who, "contracts", At(fx.c1), amend, expect));
    }
    cases.push(case(
        OtherAdmin,
        "contracts",
        New,
        draft_contract(fx.acc1),
        Missing,
    ));
    let hijack = json!({"type": "AmendContract", "terms": "Hijacked"});
    cases.push(case(OtherAdmin, "contracts", At(fx.c1), hijack, Missing));
    // The role check comes first: allowed roles then meet the state rule (c1 is not active).
    let renew =
        json!({"type": "RenewContract", "new_end_date": "2031-12-31", "new_value": "6000.00"});
    for (who, expect) in [
        (Operator, Denied),
        (Viewer, Denied),
        (Partner, Denied),
        (Manager, Rule("contract_not_renewable")),
        (Admin, Rule("contract_not_renewable")),
    ] {
        cases.push(case(who, "contracts", At(fx.c1), renew.clone(), expect));
    }
    let sign = |party: &str| {
        json!({"type": "SignContract", "party": party, "signatory_name": "Pat Buyer",
            "signatory_email": "pat@hooli.test"})
    };
    for (who, party, expect) in [
        (Partner, "Customer", Rule("contract_not_approved")), // role passes, state does not
        (Partner, "Vendor", Denied),
        (Partner2, "Customer", Denied), // another account's Partner
        (Viewer, "Customer", Denied),
        (Operator, "Vendor", Rule("contract_not_approved")),
    ] {
        cases.push(case(who, "contracts", At(fx.c1), sign(party), expect));
    }
    let activate = json!({"type": "ActivateContract"});
    cases.push(case(Admin, "contracts", At(fx.c1), activate, Denied).saying("done by the system"));
    cases
}

#[tokio::test]
async fn each_role_of_each_tenant_may_send_exactly_its_commands_and_refusals_append_nothing() {
    let fx = setup().await;
    for (n, c) in command_cases(&fx).into_iter().enumerate() {
        let id = match c.target {
            New => Uuid::new_v4(),
            At(id) => id,
            SentQuote(account) => sent_quote(&fx.api, fx.token(Admin), account).await,
        };
        let label = format!("case {n}: {:?} → {}/{id} {}", c.who, c.collection, c.body);
        let events_before = user_events(&fx.stack).await;
        let stream_before = stream_len(&fx.stack, id).await;
        let response = fx
            .api
            .command(fx.token(c.who), c.collection, id)
            .json(&c.body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        if status != c.expect.status() {
            let text = response.text().await.unwrap_or_default();
            panic!(
                "{label}: expected {}, got {status}: {text}",
                c.expect.status()
            );
        }
        if c.expect == Allowed {
            let reply: Value = response.json().await.unwrap();
            assert_eq!(reply["id"], json!(id.to_string()), "{label}: {reply}");
            continue;
        }
        let body = problem(response, status).await;
        assert_eq!(body["type"], c.expect.problem_type(), "{label}: {body}");
        if let Invalid(field) = c.expect {
            assert_eq!(body["errors"][0]["field"], field, "{label}: {body}");
        }
        if let Some(part) = c.detail {
            let detail = body["detail"].as_str().unwrap();
            assert!(detail.contains(part), "{label}: {body}");
        }
        assert_eq!(
            user_events(&fx.stack).await,
            events_before,
            "{label}: a refused command appended events"
        );
        assert_eq!(stream_len(&fx.stack, id).await, stream_before, "{label}");
    }

    // The Manager's refused ChangePassword stored no password: the Operator (now
    // ops.admin@matrixa.test) still signs in with the old one only.
    let stolen = fx
        .api
        .login_as(&fx.a, "ops.admin@matrixa.test", "stolen password 99")
        .await;
    problem(stolen, StatusCode::UNAUTHORIZED).await;
    let own = fx
        .api
        .login_as(&fx.a, "ops.admin@matrixa.test", MEMBER_PASSWORD)
        .await;
    assert_eq!(own.status(), StatusCode::OK);
}

// ---------------------------------------------------------------------------------------------
// Queries
// ---------------------------------------------------------------------------------------------

/// What one caller must see, and nothing else.
struct View {
    accounts: Vec<Uuid>,
    users: Vec<Uuid>,
    quotes: Vec<Uuid>,
    approvals: Vec<Uuid>,
    contracts: Vec<Uuid>,
    pending_for_me: Vec<Uuid>,
    /// The accounts in `auditLog(aggregateType: ACCOUNT)`; `None`: refused (`FORBIDDEN`).
    audit_accounts: Option<Vec<Uuid>>,
}

fn view(fx: &Fx, who: Who) -> View {
    let tenant_a_users = [
        Admin, Manager, ManagerLow, Operator, Viewer, Partner, Partner2,
    ]
    .map(|w| fx.id(w))
    .to_vec();
    let partner =
        |account: Uuid, quotes: Vec<Uuid>, approvals: Vec<Uuid>, contracts: Vec<Uuid>| View {
            accounts: vec![account],
            users: vec![fx.id(who)], // the users linked to the same account: here just themself
            quotes,
            approvals,
            contracts,
            pending_for_me: vec![],
            audit_accounts: None,
        };
    match who {
        Admin | Manager | ManagerLow | Operator | Viewer => View {
            accounts: vec![fx.acc1, fx.acc2],
            users: tenant_a_users,
            quotes: vec![fx.q1, fx.q2, fx.qa, fx.qb],
            approvals: vec![fx.appr_a, fx.appr_b],
            contracts: vec![fx.c1, fx.c2],
            pending_for_me: match who {
                // appr_b is the Manager's own request.
                Manager => vec![fx.appr_a],
                // pendingForMe applies ApproveLevel's rule: a limit of 100 EUR decides
                // neither 850 EUR request.
                // Level 1 needs Manager; holding TenantAdmin does not count.
                _ => vec![],
            },
            audit_accounts: Some(vec![fx.acc1, fx.acc2]),
        },
        Partner => partner(fx.acc1, vec![fx.q1, fx.qa], vec![fx.appr_a], vec![fx.c1]),
        Partner2 => partner(fx.acc2, vec![fx.q2, fx.qb], vec![fx.appr_b], vec![fx.c2]),
        OtherAdmin => View {
            accounts: vec![fx.acc_b],
            users: vec![fx.id(OtherAdmin), fx.id(OtherPartner)],
            quotes: vec![],
            approvals: vec![],
            contracts: vec![],
            pending_for_me: vec![],
            audit_accounts: Some(vec![fx.acc_b]),
        },
        OtherPartner => partner(fx.acc_b, vec![], vec![], vec![]),
    }
}

const LISTS: &str = r#"{
  accounts(first: 100) { totalCount edges { node { id } } }
  users(first: 100) { totalCount edges { node { id } } }
  quotes(first: 100) { totalCount edges { node { id } } }
  approvals(first: 100) { totalCount edges { node { id } } }
  pending: approvals(first: 100, filter: {pendingForMe: true}) { totalCount edges { node { id } } }
  contracts(first: 100) { totalCount edges { node { id } } }
}"#;

fn set(ids: &[Uuid]) -> BTreeSet<String> {
    ids.iter().map(Uuid::to_string).collect()
}

/// The ids of a connection's nodes.
fn ids_in(data: &Value, field: &str, key: &str) -> BTreeSet<String> {
    data[field]["edges"]
        .as_array()
        .unwrap_or_else(|| panic!("{field}: {data}"))
        .iter()
        .map(|e| e["node"][key].as_str().unwrap().to_owned())
        .collect()
}

/// The ids of a connection's nodes, whose totalCount must agree. (Not while waiting for the
/// read models: the page and the count are two statements of a read-committed transaction,
/// so they may disagree while a projector is writing.)
fn listed(data: &Value, field: &str, key: &str) -> BTreeSet<String> {
    let ids = ids_in(data, field, key);
    assert_eq!(
        data[field]["totalCount"],
        json!(ids.len()),
        "{field}: {data}"
    );
    ids
}

/// (field in LISTS, expected ids) for one caller.
fn expected_lists(v: &View) -> [(&'static str, BTreeSet<String>); 6] {
    [
        ("accounts", set(&v.accounts)),
        ("users", set(&v.users)),
        ("quotes", set(&v.quotes)),
        ("approvals", set(&v.approvals)),
        ("pending", set(&v.pending_for_me)),
        ("contracts", set(&v.contracts)),
    ]
}

async fn lists(fx: &Fx, who: Who, await_version: Option<(Uuid, u64)>) -> Value {
    let reply = fx.api.graphql(fx.token(who), LISTS, await_version).await;
    assert!(reply.get("errors").is_none(), "{who:?}: {reply}");
    reply["data"].clone()
}

fn role_name(who: Who) -> &'static str {
    match who {
        Admin | OtherAdmin => "TENANT_ADMIN",
        Manager | ManagerLow => "MANAGER",
        Operator => "OPERATOR",
        Viewer => "VIEWER",
        Partner | Partner2 | OtherPartner => "PARTNER",
    }
}

#[tokio::test]
async fn each_role_of_each_tenant_sees_exactly_its_rows() {
    let fx = setup().await;

    // Read-your-writes for the last approval (read.approvals fed by it), then wait until the
    // tenant-wide views of both admins are complete, so "not visible" below is never lag.
    lists(&fx, Admin, Some((fx.appr_b, 1))).await;
    for admin in [Admin, OtherAdmin] {
        let expected = expected_lists(&view(&fx, admin));
        eventually(
            &format!("the read models of {admin:?}'s tenant"),
            || async {
                let data = lists(&fx, admin, None).await;
                expected
                    .iter()
                    .all(|(field, ids)| ids_in(&data, field, "id") == *ids)
                    .then_some(())
            },
        )
        .await;
    }

    // Every aggregate of both tenants, with the by-id field that reads it (users have none).
    let targets: Vec<(&str, Option<&str>, Uuid)> = [
        ("ACCOUNT", Some("account"), vec![fx.acc1, fx.acc2, fx.acc_b]),
        ("QUOTE", Some("quote"), vec![fx.q1, fx.q2, fx.qa, fx.qb]),
        ("APPROVAL", Some("approval"), vec![fx.appr_a, fx.appr_b]),
        ("CONTRACT", Some("contract"), vec![fx.c1, fx.c2]),
        ("USER", None, EVERYONE.iter().map(|w| fx.id(*w)).collect()),
    ]
    .into_iter()
    .flat_map(|(kind, by_id, ids)| ids.into_iter().map(move |id| (kind, by_id, id)))
    .collect();
    let at = (chrono::Utc::now() + chrono::Duration::hours(1))
        .to_rfc3339_opts(SecondsFormat::Secs, true);
    // In batches, to stay within the alias limit.
    let batches: Vec<String> = targets
        .chunks(8)
        .enumerate()
        .map(|(batch, chunk)| {
            let fields: Vec<String> = chunk
                .iter()
                .enumerate()
                .flat_map(|(i, (kind, by_id, id))| {
                    let n = batch * 8 + i;
                    let one = by_id.map(|field| format!(r#"o{n}: {field}(id: "{id}") {{ id }}"#));
                    let history = format!(
                        r#"h{n}: eventHistory(aggregateType: {kind}, aggregateId: "{id}") {{ totalCount }}"#
                    );
                    let state = format!(
                        r#"s{n}: asOf(aggregateType: {kind}, aggregateId: "{id}", at: "{at}") {{ version }}"#
                    );
                    one.into_iter().chain([history, state])
                })
                .collect();
            format!("{{ {} }}", fields.join("\n"))
        })
        .collect();

    for who in EVERYONE {
        let v = view(&fx, who);
        let token = fx.token(who);

        // me: the caller as stored now.
        let me = fx
            .api
            .graphql(token, "{ me { userId tenantId roles accountId } }", None)
            .await;
        let me = &me["data"]["me"];
        assert_eq!(me["userId"], json!(fx.id(who).to_string()), "{who:?}: {me}");
        assert_eq!(
            me["tenantId"],
            json!(fx.tenant(who).id.to_string()),
            "{who:?}"
        );
        assert_eq!(me["roles"], json!([role_name(who)]), "{who:?}");
        assert_eq!(
            me["accountId"],
            json!(fx.account_of(who).map(|a| a.to_string())),
            "{who:?}"
        );

        // Lists, and the pendingForMe filter.
        let data = lists(&fx, who, None).await;
        for (field, ids) in expected_lists(&v) {
            assert_eq!(listed(&data, field, "id"), ids, "{who:?} {field}");
        }

        // By id, event history and asOf: visible exactly when the caller's list holds the id;
        // otherwise null / empty, never an error.
        let mut data = serde_json::Map::new();
        for batch in &batches {
            let reply = fx.api.graphql(token, batch, None).await;
            assert!(reply.get("errors").is_none(), "{who:?}: {reply}");
            data.extend(reply["data"].as_object().unwrap().clone());
        }
        let data = Value::Object(data);
        for (n, (kind, by_id, id)) in targets.iter().enumerate() {
            let visible = match *kind {
                "ACCOUNT" => &v.accounts,
                "QUOTE" => &v.quotes,
                "APPROVAL" => &v.approvals,
                "CONTRACT" => &v.contracts,
                _ => &v.users,
            }
            .contains(id);
            let label = format!("{who:?} {kind} {id} (visible: {visible})");
            if by_id.is_some() {
                let one = &data[format!("o{n}")];
                if visible {
                    assert_eq!(one["id"], json!(id.to_string()), "{label}: {one}");
                } else {
                    assert!(one.is_null(), "{label}: {one}");
                }
            }
            let history = data[format!("h{n}")]["totalCount"].as_i64().unwrap();
            assert_eq!(history > 0, visible, "{label}: {history} events");
            let state = &data[format!("s{n}")];
            assert_eq!(!state.is_null(), visible, "{label}: {state}");
        }

        // The audit log: the tenant's own trail, refused to Partners.
        let audit = fx
            .api
            .graphql(
                token,
                "{ auditLog(aggregateType: ACCOUNT, first: 100) { totalCount edges { node { aggregateId } } } }",
                None,
            )
            .await;
        match &v.audit_accounts {
            Some(accounts) => {
                assert!(audit.get("errors").is_none(), "{who:?}: {audit}");
                let seen = listed(&audit["data"], "auditLog", "aggregateId");
                assert_eq!(seen, set(accounts), "{who:?} auditLog");
            }
            None => {
                assert_eq!(
                    audit["errors"][0]["extensions"]["code"], "FORBIDDEN",
                    "{who:?}: {audit}"
                );
                assert_eq!(audit["data"], Value::Null, "{who:?}: {audit}");
            }
        }
    }
}
