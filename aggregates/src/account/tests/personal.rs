//! Which of the account's events hold personal data, and whom it is about.
use super::*;
use crate::{Personal, PersonalData, Subject};

const ACCOUNT: Uuid = Uuid::from_u128(100);

fn personal_data(event: &E) -> Option<Personal> {
    let account: Account = replay(vec![opened(), event.clone()]);
    account.personal_data(&ACCOUNT.to_string(), event, None)
}

fn contacts() -> Option<Personal> {
    Some(Personal {
        subject: Subject::Account(ACCOUNT),
        fields: &["legal_name", "billing_email"],
        sign_in: None,
    })
}

#[test]
fn opening_and_updates_seal_the_contacts_under_the_account() {
    assert_eq!(personal_data(&opened()), contacts());
    let update = E::AccountDetailsUpdated {
        name: Some(text("Globex EU")),
        legal_name: None,
        country: None,
        billing_email: None,
    };
    // Left-out fields are null: the store skips them.
    assert_eq!(personal_data(&update), contacts());
}

#[test]
fn other_events_hold_no_personal_data() {
    for event in [
        activated(),
        E::AccountClosed { reason: text("x") },
        E::AccountContactDataForgotten {},
    ] {
        assert_eq!(personal_data(&event), None, "{event:?}");
    }
}
