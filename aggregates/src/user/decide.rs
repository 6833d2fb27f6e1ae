//! The user's rules: `decide` returns the events a command produces without changing anything.
use std::collections::BTreeSet;

use rust_decimal::Decimal;
use uuid::Uuid;

use super::facts::{Facts, Services};
use super::state::Profile;
use super::{User, UserCommand, UserEvent};
use crate::account::AccountStatus;
use crate::handle::{gathered, Decide};
use crate::limits::{MONEY, NAME_MAX, REASON_MAX};
use crate::{Actor, Command, CurrencyCode, DomainError, Email, Money, Role, RuleCode, Text};

/// Who manages users.
const ADMINS: &[Role] = &[Role::TenantAdmin];
/// Roles that never approve anything, so an approval limit means nothing for them.
const NEVER_APPROVE: &[Role] = &[Role::Viewer, Role::Partner];

/// The reason a forgotten user's deactivation gives.
const FORGOTTEN: &str = "forgotten";

/// What every rule may consult besides the user's own state.
struct Ctx<'a> {
    actor: &'a Actor,
    facts: &'a Facts,
}

impl Decide for User {
    type Facts = Facts;

    async fn gather(
        &self,
        command: &Command<UserCommand>,
        services: &Services,
    ) -> Result<Facts, DomainError> {
        Facts::gather(services.as_ref(), self.profile.as_ref(), command).await
    }

    fn decide(
        &self,
        command: Command<UserCommand>,
        facts: &Facts,
    ) -> Result<Vec<UserEvent>, DomainError> {
        use UserCommand as C;
        let Command { actor, body, .. } = command;
        let ctx = Ctx {
            actor: &actor,
            facts,
        };
        let Some(user) = &self.profile else {
            return match body {
                C::RegisterUser {
                    user_id,
                    email,
                    display_name,
                    roles,
                    account_id,
                } => register(&ctx, user_id, &email, &display_name, roles, account_id),
                _ => Err(DomainError::NotFound("user")),
            };
        };
        match body {
            C::RegisterUser { .. } => Err(DomainError::rule(
                RuleCode::UserExists,
                "a user with this id is already registered",
            )),
            C::ForgetUser {} => user.forget(&ctx),
            _ if user.forgotten => Err(DomainError::rule(
                RuleCode::UserForgotten,
                "the user was forgotten; their data is erased",
            )),
            C::ChangeRoles { roles, account_id } => user.change_roles(&ctx, roles, account_id),
            C::LinkPartnerAccount { account_id } => user.link_partner(&ctx, account_id),
            C::SetApprovalLimit { amount, currency } => {
                user.set_approval_limit(&ctx, amount, &currency)
            }
            C::ChangeEmail { email } => user.change_email(&ctx, &email),
            C::ChangePassword {} => user.change_password(&ctx),
            C::DeactivateUser { reason } => user.deactivate(&ctx, &reason),
            C::ReactivateUser {} => user.reactivate(&ctx),
        }
    }
}

fn register(
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
    let account_id = partner_link(ctx, &roles, account_id)?;
    ensure_email_free(ctx, &email)?;
    Ok(vec![UserEvent::UserRegistered {
        user_id,
        email,
        display_name,
        roles,
        account_id,
    }])
}

impl Profile {
    fn change_roles(
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
                return Err(DomainError::rule(
                    RuleCode::PartnerMovedByLinkOnly,
                    "use LinkPartnerAccount to move a partner to another account",
                ));
            }
            self.account_id
        } else {
            partner_link(ctx, &to, account_id)?
        };
        if to == self.roles {
            return Ok(vec![]);
        }
        if !to.contains(&Role::TenantAdmin) {
            self.ensure_not_last_admin(ctx)?;
        }
        Ok(vec![UserEvent::UserRolesChanged {
            from: self.roles.clone(),
            to,
            account_id: linked,
        }])
    }

    fn link_partner(&self, ctx: &Ctx<'_>, account_id: Uuid) -> Result<Vec<UserEvent>, DomainError> {
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
        ensure_linkable(ctx)?;
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
        let limit = Money::parse_amount("amount", amount, &MONEY, &currency)?;
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

    fn change_email(&self, ctx: &Ctx<'_>, email: &str) -> Result<Vec<UserEvent>, DomainError> {
        self.require_self_or_admin(ctx.actor, "ChangeEmail")?;
        let email = Email::parse("email", email)?;
        if email == self.email {
            return Ok(vec![]);
        }
        ensure_email_free(ctx, &email)?;
        Ok(vec![UserEvent::UserEmailChanged {
            from: self.email.clone(),
            to: email,
        }])
    }

    fn change_password(&self, ctx: &Ctx<'_>) -> Result<Vec<UserEvent>, DomainError> {
        let by = self.require_self_or_admin(ctx.actor, "ChangePassword")?;
        Ok(vec![UserEvent::PasswordChanged { by }])
    }

    fn deactivate(&self, ctx: &Ctx<'_>, reason: &str) -> Result<Vec<UserEvent>, DomainError> {
        ctx.actor.require_any(ADMINS, "DeactivateUser")?;
        let reason = Text::parse("reason", reason, REASON_MAX)?;
        if !self.active {
            return Err(DomainError::rule(
                RuleCode::UserDeactivated,
                "the user is already deactivated",
            ));
        }
        self.ensure_not_last_admin(ctx)?;
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

    /// Forgetting deactivates an active user through `deactivate`, so every rule about
    /// deactivation (keeping a TenantAdmin) holds for forgetting too.
    fn forget(&self, ctx: &Ctx<'_>) -> Result<Vec<UserEvent>, DomainError> {
        ctx.actor.require_person(ADMINS, "ForgetUser")?;
        if self.forgotten {
            return Ok(vec![]);
        }
        let mut events = match self.active {
            true => self.deactivate(ctx, FORGOTTEN)?,
            false => vec![],
        };
        events.push(UserEvent::UserForgotten {});
        Ok(events)
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
    fn ensure_not_last_admin(&self, ctx: &Ctx<'_>) -> Result<(), DomainError> {
        if !self.is_active_tenant_admin() {
            return Ok(());
        }
        if *gathered(&ctx.facts.active_tenant_admins, "active TenantAdmins")? <= 1 {
            return Err(DomainError::rule(
                RuleCode::LastTenantAdmin,
                "the tenant must keep at least one active TenantAdmin",
            ));
        }
        Ok(())
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

/// The account a user with `roles` is linked to: exactly one for a Partner, none otherwise. A
/// rule between two fields, so a refusal is a rule's (422), not a field's.
fn partner_link(
    ctx: &Ctx<'_>,
    roles: &[Role],
    account_id: Option<Uuid>,
) -> Result<Option<Uuid>, DomainError> {
    match (roles.contains(&Role::Partner), account_id) {
        (false, None) => Ok(None),
        (false, Some(_)) => Err(DomainError::rule(
            RuleCode::NotAPartner,
            "only Partner users are linked to an account",
        )),
        (true, None) => Err(DomainError::rule(
            RuleCode::PartnerNeedsAccount,
            "a Partner must be linked to an account",
        )),
        (true, Some(id)) => {
            ensure_linkable(ctx)?;
            Ok(Some(id))
        }
    }
}

/// A partner is linked only to an account of the tenant that is not closed.
fn ensure_linkable(ctx: &Ctx<'_>) -> Result<(), DomainError> {
    let facts = ctx
        .facts
        .account
        .as_ref()
        .ok_or(DomainError::NotFound("account"))?;
    if facts.status == AccountStatus::Closed {
        return Err(DomainError::rule(
            RuleCode::AccountClosed,
            "a partner cannot be linked to a closed account",
        ));
    }
    Ok(())
}

fn ensure_email_free(ctx: &Ctx<'_>, email: &Email) -> Result<(), DomainError> {
    if *gathered(&ctx.facts.email_in_use, "users' e-mail addresses")? {
        return Err(DomainError::rule(
            RuleCode::EmailInUse,
            format!("another user of the tenant has {}", email.as_str()),
        ));
    }
    Ok(())
}
