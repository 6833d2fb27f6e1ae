//! The user's state, as far as its rules need it, and the `apply` that folds its events into
//! it. cqrs-es's `Aggregate` is implemented here; `handle` is the crate's one generic one.
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Services, UserCommand, UserEvent};
use crate::{Command, DomainError, Email, Money, Personal, PersonalData, Role, Subject, UserFacts};

/// The state the rules need; the read model holds everything else.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct User {
    pub(super) profile: Option<Profile>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Profile {
    pub(super) user_id: Uuid,
    pub(super) email: Email,
    /// Sorted, without duplicates.
    pub(super) roles: Vec<Role>,
    pub(super) account_id: Option<Uuid>,
    pub(super) approval_limit: Option<Money>,
    pub(super) active: bool,
    /// Forgotten users refuse every command. Absent in states saved before forgetting existed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(super) forgotten: bool,
}

impl User {
    /// What other aggregates' rules need to know about this user; `None` before registration.
    pub fn facts(&self) -> Option<UserFacts> {
        self.profile.as_ref().map(|p| UserFacts {
            user_id: p.user_id,
            roles: p.roles.clone(),
            approval_limit: p.approval_limit.clone(),
            account_id: p.account_id,
            active: p.active,
        })
    }

    pub fn email(&self) -> Option<&Email> {
        self.profile.as_ref().map(|p| &p.email)
    }
}

impl Profile {
    /// An active TenantAdmin: the tenant must keep at least one.
    pub(super) fn is_active_tenant_admin(&self) -> bool {
        self.active && self.roles.contains(&Role::TenantAdmin)
    }

    fn apply(&mut self, event: UserEvent) {
        use UserEvent as E;
        match event {
            E::UserRegistered { .. } => {}
            E::UserRolesChanged { to, account_id, .. } => {
                self.roles = to;
                self.account_id = account_id;
            }
            E::PartnerAccountLinked { account_id, .. } => self.account_id = Some(account_id),
            E::ApprovalLimitSet { amount, currency } => {
                self.approval_limit = Some(Money::new(amount, currency));
            }
            E::UserEmailChanged { to, .. } => self.email = to,
            E::UserDeactivated { .. } => self.active = false,
            E::UserReactivated {} => self.active = true,
            E::UserForgotten {} => {
                // The store can no longer read the address either; the state matches it.
                self.email = Email::erased();
                self.forgotten = true;
            }
            E::PasswordChanged { .. } => {}
        }
    }
}

impl Aggregate for User {
    const TYPE: &'static str = "User";
    type Command = Command<UserCommand>;
    type Event = UserEvent;
    type Error = DomainError;
    type Services = Services;

    async fn handle(
        &mut self,
        command: Self::Command,
        services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), DomainError> {
        crate::handle::handle(self, command, services, sink).await
    }

    fn apply(&mut self, event: UserEvent) {
        match (event, self.profile.as_mut()) {
            (
                UserEvent::UserRegistered {
                    user_id,
                    email,
                    roles,
                    account_id,
                    ..
                },
                _,
            ) => {
                self.profile = Some(Profile {
                    user_id,
                    email,
                    roles,
                    account_id,
                    approval_limit: None,
                    active: true,
                    forgotten: false,
                });
            }
            (event, Some(profile)) => profile.apply(event),
            (_, None) => {}
        }
    }
}

impl PersonalData for User {
    /// A user's stream id is their id, so the data in it is about them.
    fn personal_data(
        &self,
        stream_id: &str,
        event: &UserEvent,
        _: Option<Uuid>,
    ) -> Option<Personal> {
        use UserEvent as E;
        // Every event is listed, so a new one has to be decided on here.
        let (fields, sign_in): (&'static [&'static str], _) = match event {
            E::UserRegistered { .. } => (&["email", "display_name"], "email"),
            E::UserEmailChanged { .. } => (&["from", "to"], "to"),
            E::UserRolesChanged { .. }
            | E::PartnerAccountLinked { .. }
            | E::ApprovalLimitSet { .. }
            | E::PasswordChanged { .. }
            | E::UserDeactivated { .. }
            | E::UserReactivated {}
            | E::UserForgotten {} => return None,
        };
        Some(Personal {
            subject: Subject::User(stream_id.parse().ok()?),
            fields,
            sign_in: Some(sign_in),
        })
    }
}
