//! Whom a contract's signatures are about: the customer's signatory is the account's contact,
//! the vendor's is the user who signed.
use super::*;
use crate::{Personal, PersonalData, Subject};

const CONTRACT: &str = "00000000-0000-0000-0000-0000000001f4";

/// The personal data of `party`'s signature, recorded by `person` (none: a process or a key).
fn signature_of(party: Party, person: Option<Uuid>) -> Option<Personal> {
    let event = signed(party);
    let contract: Contract = replay(with(approved_history(), event.clone()));
    contract.personal_data(CONTRACT, &event, person)
}

fn about(subject: Subject) -> Option<Personal> {
    Some(Personal {
        subject,
        fields: &["signatory_name", "signatory_email"],
        sign_in: None,
    })
}

#[test]
fn the_customer_signatory_is_filed_under_the_account() {
    for person in [Some(Uuid::from_u128(7)), None] {
        assert_eq!(
            signature_of(Party::Customer, person),
            about(Subject::Account(ACCOUNT))
        );
    }
}

#[test]
fn the_vendor_signatory_is_filed_under_the_user_who_signed() {
    assert_eq!(
        signature_of(Party::Vendor, Some(Uuid::from_u128(7))),
        about(Subject::User(Uuid::from_u128(7)))
    );
    // No person signed (a process, or an API key): the account's contract keeps it.
    assert_eq!(
        signature_of(Party::Vendor, None),
        about(Subject::Account(ACCOUNT))
    );
}

#[test]
fn other_events_hold_no_personal_data() {
    let contract: Contract = replay(active());
    for event in [drafted(), approved(), activated(), cancelled()] {
        assert_eq!(
            contract.personal_data(CONTRACT, &event, None),
            None,
            "{event:?}"
        );
    }
}
