use std::collections::BTreeSet;

use actix_web::{body, ResponseError};
use aggregates::decimal::parse_wire;
use aggregates::limits::{DECIMAL_FIELDS, QUOTA_MAX};
use aggregates::{CommandSet, CurrencyCode};
use event_store::{BusAggregate, Collection, PerAggregate};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use uuid::Uuid;

use super::document;
use crate::error::FieldError;
use crate::routes::commands::{parse_request, Request};
use crate::ApiError;

/// Runs `body` through the same parser `routes::commands::dispatch` uses for `collection`.
fn parse(collection: Collection, body: &Value) -> Result<(), ApiError> {
    struct Parse(Request);
    impl PerAggregate for Parse {
        type Output = Result<(), ApiError>;
        fn run<A: BusAggregate>(self) -> Self::Output {
            self.0.into_command::<A>().map(drop)
        }
    }
    let request = parse_request(collection, body.to_string().as_bytes(), Uuid::nil())?;
    collection.dispatch(Parse(request))
}

/// Every command name serde accepts for `C`, taken from its own "unknown variant" message so
/// the list comes from the parser, not from this test.
fn parser_names<C: DeserializeOwned>() -> BTreeSet<String> {
    let Err(error) = serde_json::from_value::<C>(json!({ "NoSuchCommand": {} })) else {
        panic!("a command named NoSuchCommand parsed");
    };
    let message = error.to_string();
    let expected = message
        .split_once("expected one of")
        .unwrap_or_else(|| panic!("unexpected serde message: {message}"))
        .1;
    expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// The names the parser accepts, and those of them only the system may send.
fn parser_names_of(collection: Collection) -> (BTreeSet<String>, &'static [&'static str]) {
    struct Names;
    impl PerAggregate for Names {
        type Output = (BTreeSet<String>, &'static [&'static str]);
        fn run<A: BusAggregate>(self) -> Self::Output {
            (parser_names::<A::Body>(), A::Body::SYSTEM_ONLY)
        }
    }
    collection.dispatch(Names)
}

fn request_body_schema(collection: Collection) -> &'static Value {
    let path = format!("/api/v1/{collection}/{{id}}");
    &document()["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
}

/// The command names the document lists for `collection`, from its `oneOf` `$ref`s.
fn documented_names(collection: Collection) -> BTreeSet<String> {
    let one_of = request_body_schema(collection)["oneOf"].as_array().unwrap();
    one_of
        .iter()
        .map(|r| {
            let reference = r["$ref"].as_str().unwrap();
            reference.rsplit('/').next().unwrap().to_owned()
        })
        .collect()
}

/// A 2020-12 validator for `schema`, with the document's components beside it so every
/// `#/components/...` reference resolves as it does inside the document.
fn validator(schema: &Value) -> jsonschema::Validator {
    let mut schema = schema.clone();
    schema["components"] = document()["components"].clone();
    jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap()
}

#[test]
fn documented_commands_are_exactly_the_ones_the_parser_accepts() {
    for collection in Collection::ALL {
        let documented = documented_names(collection);
        let (parsed, system_only) = parser_names_of(collection);
        let for_clients: BTreeSet<String> = parsed
            .into_iter()
            .filter(|name| !system_only.contains(&name.as_str()))
            .collect();
        assert_eq!(documented, for_clients, "{collection}");
        for name in &documented {
            let schema = &document()["components"]["schemas"][name];
            assert_eq!(schema["properties"]["type"]["const"], json!(name));
            assert!(schema["required"]
                .as_array()
                .unwrap()
                .contains(&json!("type")));
        }
    }
}

#[test]
fn every_documented_name_reaches_its_commands_fields_in_the_parser() {
    for collection in Collection::ALL {
        let unknown = parse(collection, &json!({ "type": "LaunchRocket" }));
        assert!(
            matches!(unknown, Err(ApiError::UnknownCommand(_))),
            "{collection}"
        );
        for name in documented_names(collection) {
            // Known command, bad fields: the parser got past the name (and, for the commands
            // that carry one, the password taken out before it) to the fields.
            let mut body = json!({ "type": name, "not_a_field": true });
            if matches!(name.as_str(), "RegisterUser" | "ChangePassword") {
                body["password"] = json!("a-long-enough-password");
            }
            let result = parse(collection, &body);
            assert!(
                matches!(&result, Err(ApiError::InvalidInput(e))
                    if e.field != "type" && e.field != "password"),
                "{collection} {name}: {result:?}"
            );
        }
    }
}

fn valid(body: Value) -> (Value, bool) {
    (body, true)
}

fn invalid(body: Value) -> (Value, bool) {
    (body, false)
}

/// Bodies the parser accepts and rejects, per collection; the document must agree on each.
fn examples() -> Vec<(Collection, Vec<(Value, bool)>)> {
    let id = "7a1c2b3d-0000-4000-8000-000000000001";
    let open = json!({"type": "OpenAccount", "name": "Acme", "legal_name": "Acme Ltd",
        "country": "GB", "billing_email": "billing@acme.test", "currency": "GBP", "tier": "Gold"});
    let mut open_with_extra = open.clone();
    open_with_extra["vip"] = json!(true);
    let register = json!({"type": "RegisterUser", "email": "a@b.test", "display_name": "A",
        "roles": ["Manager"], "password": "long enough password"});
    let mut short_password = register.clone();
    short_password["password"] = json!("short");
    let draft_contract = json!({"type": "DraftContract", "account_id": id, "title": "C",
        "value": "1000.00", "currency": "EUR", "start_date": "2030-01-01",
        "end_date": "2030-12-31", "terms": "net 30"});
    let mut bad_date = draft_contract.clone();
    bad_date["start_date"] = json!("2030-13-45");
    let accounts = vec![
        valid(open),
        invalid(open_with_extra),
        invalid(json!({"type": "OpenAccount", "name": "Acme"})),
        invalid(json!({"type": "ChangeTier", "tier": "Platinum"})),
        invalid(json!({"type": "ChangeTier", "tier": 3})),
        valid(json!({"type": "SetCreditLimit", "amount": "1250.00"})),
        invalid(json!({"type": "SetCreditLimit", "amount": 1250})),
        invalid(json!({"type": "SetCreditLimit", "amount": "lots"})),
        invalid(json!({"type": "SetCreditLimit", "amount": "-1"})),
        invalid(json!({"type": "SetCreditLimit", "amount": "+1"})),
        invalid(json!({"type": "SetCreditLimit", "amount": "01.50"})),
        invalid(json!({"type": "SetCreditLimit", "amount": "1e3"})),
        invalid(json!({"type": "SetApiQuota", "requests_per_minute": -1})),
        invalid(json!({"type": "SetApiQuota", "requests_per_minute": 1.5})),
        // JSON Schema's integers include 120.0, and so does the parser.
        valid(json!({"type": "SetApiQuota", "requests_per_minute": 120.0})),
        valid(json!({"type": "UpdateAccountDetails", "name": null, "country": "FR"})),
        valid(json!({"type": "ReinstateAccount"})),
        invalid(json!({"type": "LaunchRocket"})),
        invalid(json!({"tier": "Gold"})),
    ];
    let users = vec![
        valid(register),
        invalid(short_password),
        invalid(
            json!({"type": "RegisterUser", "email": "a@b.test", "display_name": "A",
            "roles": ["Overlord"]}),
        ),
        valid(json!({"type": "ChangePassword", "password": "long enough password"})),
        invalid(json!({"type": "ChangePassword"})),
        invalid(json!({"type": "DeactivateUser", "reason": "left", "password": "x"})),
    ];
    let quotes = vec![
        valid(
            json!({"type": "DraftQuote", "account_id": id, "title": "Q1",
            "valid_until": "2030-01-31T00:00:00Z"}),
        ),
        invalid(
            json!({"type": "DraftQuote", "account_id": "acme", "title": "Q1",
            "valid_until": "2030-01-31T00:00:00Z"}),
        ),
        invalid(
            json!({"type": "DraftQuote", "account_id": id, "title": "Q1",
            "valid_until": "next week"}),
        ),
        valid(json!({"type": "AddLineItem", "line_id": id, "sku": "W-1",
            "description": "Widget", "quantity": "2", "unit_price": "10.50"})),
        valid(json!({"type": "ChangeLineItem", "line_id": id, "quantity": "3"})),
        valid(json!({"type": "SubmitQuote"})),
        invalid(json!({"type": "SubmitQuote", "now": true})),
    ];
    let approvals = vec![
        valid(json!({"type": "ApproveLevel", "comment": null})),
        invalid(json!({"type": "RequestApproval", "subject_type": "Invoice",
            "subject_id": id, "subject_version": 1, "amount": "5.00", "currency": "EUR",
            "requester_id": id})),
    ];
    let contracts = vec![
        valid(draft_contract),
        invalid(bad_date),
        valid(json!({"type": "SignContract", "party": "Customer",
            "signatory_name": "A", "signatory_email": "a@b.test"})),
        valid(json!({"type": "AmendContract", "value": "12.5"})),
    ];
    vec![
        (Collection::Accounts, accounts),
        (Collection::Users, users),
        (Collection::Quotes, quotes),
        (Collection::Approvals, approvals),
        (Collection::Contracts, contracts),
    ]
}

#[test]
fn request_body_schemas_accept_and_reject_what_the_parser_does() {
    for (collection, bodies) in examples() {
        let schema = validator(request_body_schema(collection));
        for (body, valid) in bodies {
            let errors: Vec<String> = schema.iter_errors(&body).map(|e| e.to_string()).collect();
            assert_eq!(errors.is_empty(), valid, "schema on {body}: {errors:?}");
            let parsed = parse(collection, &body);
            assert_eq!(parsed.is_ok(), valid, "parser on {body}: {parsed:?}");
        }
    }
}

#[test]
fn the_document_is_structurally_openapi_3_1() {
    let document = document();
    assert_eq!(document["openapi"], "3.1.0");
    assert!(document["info"]["title"].is_string() && document["info"]["version"].is_string());
    let mut references = Vec::new();
    collect_refs(document, &mut references);
    assert!(!references.is_empty());
    for reference in references {
        let pointer = reference
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("{reference}"));
        assert!(
            document.pointer(pointer).is_some(),
            "{reference} does not resolve"
        );
    }
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let responses = operation["responses"].as_object().unwrap();
            assert!(
                responses.keys().any(|s| s.starts_with('2')),
                "{method} {path}"
            );
        }
    }
    for (name, schema) in document["components"]["schemas"].as_object().unwrap() {
        let compiled = jsonschema::draft202012::options().build(&with_components(schema));
        assert!(compiled.is_ok(), "{name}: {:?}", compiled.err());
    }
}

fn with_components(schema: &Value) -> Value {
    let mut schema = schema.clone();
    schema["components"] = document()["components"].clone();
    schema
}

fn collect_refs(value: &Value, into: &mut Vec<String>) {
    match value {
        Value::Object(object) => {
            if let Some(Value::String(reference)) = object.get("$ref") {
                into.push(reference.clone());
            }
            object.values().for_each(|v| collect_refs(v, into));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, into)),
        _ => {}
    }
}

#[actix_web::test]
async fn every_error_status_is_documented_with_the_problem_body_it_sends() {
    let field = FieldError {
        field: "tier".into(),
        message: "unknown variant".into(),
    };
    let errors = [
        ApiError::MalformedJson("eof".into()),
        ApiError::InvalidInput(field),
        ApiError::Unauthorized,
        ApiError::Forbidden("no".into()),
        ApiError::NotFound("no such quote".into()),
        ApiError::Conflict("version 3 expected".into()),
        ApiError::PayloadTooLarge(10),
        ApiError::UnsupportedMediaType("text/plain".into()),
        ApiError::BodyTimeout(10),
        ApiError::RuleViolated {
            code: "quote_has_no_lines",
            message: "add a line first".into(),
        },
    ];
    let operation = &document()["paths"]["/api/v1/quotes/{id}"]["post"];
    let problem = validator(&json!({ "$ref": "#/components/schemas/Problem" }));
    for error in errors {
        let status = error.status_code().as_str().to_owned();
        assert!(
            operation["responses"].get(&status).is_some(),
            "{status} undocumented"
        );
        let body = body::to_bytes(error.error_response().into_body())
            .await
            .unwrap();
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert!(problem.is_valid(&body), "{body}");
    }
}

/// The text rules the aggregates enforce are stated in the document: what it calls valid the
/// aggregates accept, and what they refuse it calls invalid.
#[test]
fn text_rules_are_stated_as_the_aggregates_enforce_them() {
    let open = validator(&json!({ "$ref": "#/components/schemas/OpenAccount" }));
    let account = |field: &str, value: Value| {
        let mut body = json!({"type": "OpenAccount", "name": "Acme", "legal_name": "Acme GmbH",
            "country": "DE", "billing_email": "ap@acme.test", "currency": "EUR", "tier": "Gold"});
        body[field] = value;
        body
    };
    for (field, value) in [
        ("name", json!(" Acme ")),
        ("name", json!("x".repeat(200))),
        ("country", json!("de")),
        ("currency", json!(" eur ")),
        ("billing_email", json!("AP@Acme.Example.test")),
    ] {
        assert!(
            open.is_valid(&account(field, value.clone())),
            "{field} {value}"
        );
    }
    for (field, value) in [
        ("name", json!("   ")),
        ("name", json!("a\u{1}b")),
        ("name", json!("x".repeat(201))),
        ("country", json!("ß")),
        ("country", json!("DEU")),
        ("currency", json!("EU")),
        ("billing_email", json!("ap@acme")),
        ("billing_email", json!("ap@.acme.test")),
        ("billing_email", json!("a p@acme.test")),
        ("billing_email", json!("ap@acme.test.")),
    ] {
        assert!(
            !open.is_valid(&account(field, value.clone())),
            "{field} {value}"
        );
    }
}

/// The schema of `field` in the `command` component.
fn field_validator(command: &str, field: &str) -> jsonschema::Validator {
    validator(&document()["components"]["schemas"][command]["properties"][field])
}

/// Every decimal field's pattern accepts exactly what the wire form and the field's bounds do,
/// on the edges of each bound: digits around `10^max_power`, fractions around `max_scale`,
/// zeros, signs, leading zeros and other spellings `rust_decimal` alone would take.
#[test]
fn decimal_patterns_state_the_bounds_the_aggregates_check() {
    let fields = [
        ("SetCreditLimit", "amount"),
        ("DraftContract", "value"),
        ("RenewContract", "new_value"),
        ("AddLineItem", "unit_price"),
        ("AddLineItem", "quantity"),
        ("SetQuoteDiscount", "percent"),
    ];
    assert_eq!(fields.len(), DECIMAL_FIELDS.len());
    for (command, field) in fields {
        let (_, bounds) = DECIMAL_FIELDS.iter().find(|(f, _)| *f == field).unwrap();
        let schema = field_validator(command, field);
        let k = bounds.max_power as usize;
        let integers = [
            "0".to_owned(),
            "00".into(),
            "01".into(),
            "1".into(),
            "9".repeat(k),
            "9".repeat(k + 1),
            format!("1{}", "0".repeat(k)),
            format!("1{}1", "0".repeat(k - 1)),
            format!("2{}", "0".repeat(k)),
            String::new(),
        ];
        let fractions = [
            "", ".", ".0", ".00", ".000", ".0000", ".5", ".05", ".005", ".0005", ".1234", ".x",
        ];
        for integer in &integers {
            for fraction in fractions {
                for sign in ["", "-", "+", " "] {
                    let raw = format!("{sign}{integer}{fraction}");
                    let accepted = parse_wire(&raw).is_ok_and(|v| bounds.check(field, v).is_ok());
                    assert_eq!(
                        schema.is_valid(&json!(raw)),
                        accepted,
                        "{command}.{field} {raw:?}"
                    );
                }
            }
        }
        for other in ["1e3", "1_000", "1,5", "0x10", "١"] {
            assert!(!schema.is_valid(&json!(other)), "{field} {other}");
        }
    }
}

/// The currency pattern is the list `CurrencyCode::parse` accepts, in any case and spacing.
#[test]
fn the_currency_pattern_is_the_accepted_currencies() {
    let schema = field_validator("OpenAccount", "currency");
    let letters = || ('A'..='Z').chain('a'..='c');
    for a in letters() {
        for b in letters() {
            for c in letters() {
                let code = String::from_iter([a, b, c]);
                assert_eq!(
                    schema.is_valid(&json!(code)),
                    CurrencyCode::parse("currency", &code).is_ok(),
                    "{code}"
                );
            }
        }
    }
    for (raw, valid) in [
        (" eur ", true),
        ("\u{3000}Usd\n", true),
        ("EURO", false),
        ("E UR", false),
    ] {
        assert_eq!(schema.is_valid(&json!(raw)), valid, "{raw:?}");
        assert_eq!(
            CurrencyCode::parse("currency", raw).is_ok(),
            valid,
            "{raw:?}"
        );
    }
}

/// Rules on one field that the aggregates or the sign-in check: Partner stands alone among the
/// roles, quotas are bounded, no user has the nil id, sign-in text has no control character.
#[test]
fn single_field_rules_are_stated() {
    let roles = field_validator("RegisterUser", "roles");
    for (value, valid) in [
        (json!(["Partner"]), true),
        (json!(["Partner", "Partner"]), true),
        (json!(["Manager", "Operator"]), true),
        (json!(["Partner", "Viewer"]), false),
        (json!([]), false),
    ] {
        assert_eq!(roles.is_valid(&value), valid, "{value}");
    }
    let quota = field_validator("SetApiQuota", "requests_per_minute");
    for (value, valid) in [
        (0, false),
        (1, true),
        (QUOTA_MAX, true),
        (QUOTA_MAX + 1, false),
    ] {
        assert_eq!(quota.is_valid(&json!(value)), valid, "{value}");
    }
    let user_id = validator(&document()["components"]["parameters"]["UserId"]["schema"]);
    assert!(!user_id.is_valid(&json!(Uuid::nil())));
    assert!(user_id.is_valid(&json!(Uuid::from_u128(1))));
    let users = &document()["paths"]["/api/v1/users/{id}"]["post"]["parameters"];
    assert!(users.to_string().contains("#/components/parameters/UserId"));
    let login = validator(&json!({ "$ref": "#/components/schemas/LoginRequest" }));
    let sign_in = |tenant: &str| json!({ "tenant": tenant, "email": "a@b.test", "password": "p" });
    assert!(login.is_valid(&sign_in("acme")));
    assert!(!login.is_valid(&sign_in("ac\u{85}me")));
}

/// Each command's answer links to the next command on the same aggregate at its new version, so
/// a stateful client (or fuzzer) chains commands without guessing ids.
#[test]
fn accepted_commands_link_to_the_next_command_on_the_aggregate() {
    for collection in Collection::ALL {
        let path = format!("/api/v1/{collection}/{{id}}");
        let operation = &document()["paths"][path]["post"];
        let link = &operation["responses"]["200"]["links"]["NextCommand"];
        assert_eq!(
            link["operationId"], operation["operationId"],
            "{collection}"
        );
        assert_eq!(link["parameters"]["path.id"], "$response.body#/id");
        assert_eq!(
            link["parameters"]["header.If-Match"],
            "$response.header.ETag"
        );
        assert!(operation["responses"]["200"]["headers"]["ETag"].is_object());
    }
}
