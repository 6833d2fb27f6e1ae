use std::collections::BTreeSet;

use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Services, UserCommand, UserEvent, UserServices};
use crate::account::AccountStatus;
use crate::limits::{NAME_MAX, REASON_MAX};
use crate::{
    Actor, Command, CurrencyCode, DomainError, Email, Money, Role, RuleCode, Text, UserFacts,
};

/// Who manages users.
const ADMINS: &[Role] = &[Role::TenantAdmin];
/// Roles that never approve anything, so an approval limit means nothing for them.
const NEVER_APPROVE: &[Role] = &[Role::Viewer, Role::Partner];

/// The state the rules need; the read model holds everything else.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct User {
    profile: Option<Profile>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Profile {
    user_id: Uuid,
    email: Email,
    /// Sorted, without duplicates.
    roles: Vec<Role>,
    account_id: Option<Uuid>,
    approval_limit: Option<Money>,
    active: bool,
}

/// What every rule may consult besides the user's own state.
struct Ctx<'a> {
    tenant_id: Uuid,
    actor: &'a Actor,
    services: &'a dyn UserServices,
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

    /// Decides which events a command produces, without changing anything. The services are
    /// only read.
    pub async fn decide(
        &self,
        command: Command<UserCommand>,
        services: &dyn UserServices,
    ) -> Result<Vec<UserEvent>, DomainError> {
        use UserCommand as C;
        let Command {
            tenant_id,
            actor,
            body,
            ..
        } = command;
        let ctx = Ctx {
            tenant_id,
            actor: &actor,
            services,
        };
        let Some(user) = &self.profile else {
            return match body {
                C::RegisterUser {
                    user_id,
                    email,
                    display_name,
                    roles,
                    account_id,
                } => register(&ctx, user_id, &email, &display_name, roles, account_id).await,
                _ => Err(DomainError::NotFound("user")),
            };
        };
        match body {
            C::RegisterUser { .. } => Err(DomainError::rule(
                RuleCode::UserExists,
                "a user with this id is already registered",
            )),
            C::ChangeRoles { roles, account_id } => {
                user.change_roles(&ctx, roles, account_id).await
            }
            C::LinkPartnerAccount { account_id } => user.link_partner(&ctx, account_id).await,
            C::SetApprovalLimit { amount, currency } => {
                user.set_approval_limit(&ctx, amount, &currency)
            }
            C::ChangeEmail { email } => user.change_email(&ctx, &email).await,
            C::ChangePassword {} => user.change_password(&ctx),
            C::DeactivateUser { reason } => user.deactivate(&ctx, &reason).await,
            C::ReactivateUser {} => user.reactivate(&ctx),
        }
    }
}

async fn register(
    ctx: &Ctx<'_>,
    user_id: Uuid,
    email: &str,
    display_name: &str,
    roles: Vec<Role>,
    account_id: Option<Uuid>,
) -> Result<Vec<UserEvent>, DomainError> {
    ctx.actor.require_any(ADMINS, "RegisterUser")?;
    if user_id.is_nil() {
        return Err(DomainError::invalid("user_id", "must not be the nil UUID"));
    }
    let email = Email::parse("email", email)?;
    let display_name = Text::parse("display_name", display_name, NAME_MAX)?;
    let roles = parse_roles(roles)?;
    let account_id = partner_link(ctx, &roles, account_id).await?;
    ensure_email_free(ctx, &email, None).await?;
    Ok(vec![UserEvent::UserRegistered {
        user_id,
        email,
        display_name,
        roles,
        account_id,
    }])
}

impl Profile {
    async fn change_roles(
        &self,
        ctx: &Ctx<'_>,
        roles: Vec<Role>,
        account_id: Option<Uuid>,
    ) -> Result<Vec<UserEvent>, DomainError> {
        ctx.actor.require_any(ADMINS, "ChangeRoles")?;
        let to = parse_roles(roles)?;
        let linked = if self.is_partner() && to.contains(&Role::Partner) {
            // Partner is exclusive, so the roles stay as they are; moving the partner is
            // LinkPartnerAccount's job.
            if account_id.is_some_and(|id| Some(id) != self.account_id) {
                return Err(DomainError::invalid(
                    "account_id",
                    "use LinkPartnerAccount to move a partner to another account",
                ));
            }
            self.account_id
        } else {
            partner_link(ctx, &to, account_id).await?
        };
        if to == self.roles {
            return Ok(vec![]);
        }
        if !to.contains(&Role::TenantAdmin) {
            self.ensure_not_last_admin(ctx).await?;
        }
        Ok(vec![UserEvent::UserRolesChanged {
            from: self.roles.clone(),
            to,
            account_id: linked,
        }])
    }

    async fn link_partner(
        &self,
        ctx: &Ctx<'_>,
        account_id: Uuid,
    ) -> Result<Vec<UserEvent>, DomainError> {
        ctx.actor.require_any(ADMINS, "LinkPartnerAccount")?;
        if !self.is_partner() {
            return Err(DomainError::rule(
                RuleCode::NotAPartner,
                "only Partner users are linked to an account",
            ));
        }
        if self.account_id == Some(account_id) {
            return Ok(vec![]);
        }
        ensure_linkable(ctx, account_id).await?;
        Ok(vec![UserEvent::PartnerAccountLinked {
            account_id,
            previous_account_id: self.account_id,
        }])
    }

    fn set_approval_limit(
        &self,
        ctx: &Ctx<'_>,
        amount: Decimal,
        currency: &str,
    ) -> Result<Vec<UserEvent>, DomainError> {
        ctx.actor.require_any(ADMINS, "SetApprovalLimit")?;
        let currency = CurrencyCode::parse("currency", currency)?;
        let limit = Money::parse_amount("amount", amount, &currency)?;
        if self.roles.iter().all(|r| NEVER_APPROVE.contains(r)) {
            return Err(DomainError::rule(
                RuleCode::NotAnApprover,
                "Viewers and Partners never approve, so they have no approval limit",
            ));
        }
        if self.approval_limit.as_ref() == Some(&limit) {
            return Ok(vec![]);
        }
        Ok(vec![UserEvent::ApprovalLimitSet {
            amount: limit.amount,
            currency: limit.currency,
        }])
    }

    async fn change_email(
        &self,
        ctx: &Ctx<'_>,
        email: &str,
    ) -> Result<Vec<UserEvent>, DomainError> {
        self.require_self_or_admin(ctx.actor, "ChangeEmail")?;
        let email = Email::parse("email", email)?;
        if email == self.email {
            return Ok(vec![]);
        }
        ensure_email_free(ctx, &email, Some(self.user_id)).await?;
        Ok(vec![UserEvent::UserEmailChanged {
            from: self.email.clone(),
            to: email,
        }])
    }

    fn change_password(&self, ctx: &Ctx<'_>) -> Result<Vec<UserEvent>, DomainError> {
        let by = self.require_self_or_admin(ctx.actor, "ChangePassword")?;
        Ok(vec![UserEvent::PasswordChanged { by }])
    }

    async fn deactivate(&self, ctx: &Ctx<'_>, reason: &str) -> Result<Vec<UserEvent>, DomainError> {
        ctx.actor.require_any(ADMINS, "DeactivateUser")?;
        let reason = Text::parse("reason", reason, REASON_MAX)?;
        if !self.active {
            return Err(DomainError::rule(
                RuleCode::UserDeactivated,
                "the user is already deactivated",
            ));
        }
        self.ensure_not_last_admin(ctx).await?;
        Ok(vec![UserEvent::UserDeactivated { reason }])
    }

    fn reactivate(&self, ctx: &Ctx<'_>) -> Result<Vec<UserEvent>, DomainError> {
        ctx.actor.require_any(ADMINS, "ReactivateUser")?;
        if self.active {
            return Err(DomainError::rule(
                RuleCode::UserNotDeactivated,
                "only a deactivated user can be reactivated",
            ));
        }
        Ok(vec![UserEvent::UserReactivated {}])
    }

    fn is_partner(&self) -> bool {
        self.roles.contains(&Role::Partner)
    }

    /// Passes for the user themself (while active) or a TenantAdmin, and returns who acts.
    /// No process changes credentials, so the system never passes.
    fn require_self_or_admin(&self, actor: &Actor, action: &str) -> Result<Uuid, DomainError> {
        match actor {
            Actor::User { user_id, .. } if *user_id == self.user_id => {
                if !self.active {
                    return Err(DomainError::rule(
                        RuleCode::UserDeactivated,
                        "a deactivated user cannot change their own account",
                    ));
                }
                Ok(*user_id)
            }
            Actor::User { user_id, .. } if actor.has_any(ADMINS) => Ok(*user_id),
            _ => Err(DomainError::Forbidden(format!(
                "{action} is for the user themself or a TenantAdmin"
            ))),
        }
    }

    /// Refuses when this user is the tenant's last active TenantAdmin: taking their role or
    /// deactivating them would lock the tenant out of user management.
    async fn ensure_not_last_admin(&self, ctx: &Ctx<'_>) -> Result<(), DomainError> {
        if !self.active || !self.roles.contains(&Role::TenantAdmin) {
            return Ok(());
        }
        if ctx.services.active_tenant_admins(ctx.tenant_id).await? <= 1 {
            return Err(DomainError::rule(
                RuleCode::LastTenantAdmin,
                "the tenant must keep at least one active TenantAdmin",
            ));
        }
        Ok(())
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
            E::PasswordChanged { .. } => {}
        }
    }
}

/// At least one role, sorted and without duplicates; Partner stands alone because a partner
/// acts only for its own account.
fn parse_roles(roles: Vec<Role>) -> Result<Vec<Role>, DomainError> {
    let roles: BTreeSet<Role> = roles.into_iter().collect();
    if roles.is_empty() {
        return Err(DomainError::invalid("roles", "name at least one role"));
    }
    if roles.contains(&Role::Partner) && roles.len() > 1 {
        return Err(DomainError::invalid(
            "roles",
            "Partner cannot be combined with other roles",
        ));
    }
    Ok(roles.into_iter().collect())
}

/// The account a user with `roles` is linked to: exactly one for a Partner, none otherwise.
async fn partner_link(
    ctx: &Ctx<'_>,
    roles: &[Role],
    account_id: Option<Uuid>,
) -> Result<Option<Uuid>, DomainError> {
    match (roles.contains(&Role::Partner), account_id) {
        (false, None) => Ok(None),
        (false, Some(_)) => Err(DomainError::invalid(
            "account_id",
            "only Partner users are linked to an account",
        )),
        (true, None) => Err(DomainError::invalid(
            "account_id",
            "a Partner must be linked to an account",
        )),
        (true, Some(id)) => {
            ensure_linkable(ctx, id).await?;
            Ok(Some(id))
        }
    }
}

/// A partner is linked only to an account of the tenant that is not closed.
async fn ensure_linkable(ctx: &Ctx<'_>, account_id: Uuid) -> Result<(), DomainError> {
    let facts = ctx
        .services
        .account(ctx.tenant_id, account_id)
        .await?
        .ok_or(DomainError::NotFound("account"))?;
    if facts.status == AccountStatus::Closed {
        return Err(DomainError::rule(
            RuleCode::AccountClosed,
            "a partner cannot be linked to a closed account",
        ));
    }
    Ok(())
}

async fn ensure_email_free(
    ctx: &Ctx<'_>,
    email: &Email,
    except: Option<Uuid>,
) -> Result<(), DomainError> {
    if ctx
        .services
        .email_in_use(ctx.tenant_id, email, except)
        .await?
    {
        return Err(DomainError::rule(
            RuleCode::EmailInUse,
            format!("another user of the tenant has {}", email.as_str()),
        ));
    }
    Ok(())
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
        let events = self.decide(command, services.as_ref()).await?;
        for event in events {
            sink.write(event, self).await;
        }
        Ok(())
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
                });
            }
            (event, Some(profile)) => profile.apply(event),
            (_, None) => {}
        }
    }
}
