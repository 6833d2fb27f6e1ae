//! Which of the user's events hold personal data, and whom it is about.
use super::*;
use crate::{Personal, PersonalData, Subject};

fn personal_data(event: &E) -> Option<Personal> {
    let user: User = replay(vec![operator(), event.clone()]);
    user.personal_data(&ME.to_string(), event, None)
}

#[test]
fn registration_seals_the_address_and_the_name_under_the_user() {
    assert_eq!(
        personal_data(&operator()),
        Some(Personal {
            subject: Subject::User(ME),
            fields: &["email", "display_name"],
            sign_in: Some("email"),
        })
    );
}

#[test]
fn an_address_change_seals_both_addresses() {
    let changed = E::UserEmailChanged {
        from: email("ann@acme.test"),
        to: email("ann.b@acme.test"),
    };
    assert_eq!(
        personal_data(&changed),
        Some(Personal {
            subject: Subject::User(ME),
            fields: &["from", "to"],
            sign_in: Some("to"),
        })
    );
}

#[test]
fn other_events_hold_no_personal_data() {
    for event in [
        deactivated(),
        E::UserReactivated {},
        E::PasswordChanged { by: ME },
        E::UserForgotten {},
    ] {
        assert_eq!(personal_data(&event), None, "{event:?}");
    }
}

#[test]
fn a_stream_id_that_is_no_user_id_names_no_subject() {
    let user: User = replay(vec![operator()]);
    assert_eq!(user.personal_data("not-a-uuid", &operator(), None), None);
}
