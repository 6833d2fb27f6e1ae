//! SignContract: who signs for which party, once.
use super::*;

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
