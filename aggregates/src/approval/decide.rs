//! The approval's rules, one function per command: `decide` returns the events a command
//! produces without changing anything.
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use uuid::Uuid;

use super::eligibility::{limit_covers, Unfit};
use super::facts::{Facts, Services};
use super::state::{number, ApprovalStatus, LevelState, Request};
use super::{Approval, ApprovalCommand, ApprovalEvent, Level, Subject, SubjectType};
use crate::handle::{gathered, Decide};
use crate::limits::{MONEY, REASON_MAX};
use crate::{Actor, Command, CurrencyCode, DomainError, Money, Role, RuleCode, Text, UserFacts};

/// Roles a chain may name; anything else in a tenant's policy is a configuration mistake.
const APPROVER_ROLES: &[Role] = &[Role::Operator, Role::Manager, Role::TenantAdmin];

type Decided = Result<Vec<ApprovalEvent>, DomainError>;

/// Everything about a command except its body, and the outside facts it needs.
struct Ctx<'a> {
    actor: Actor,
    at: DateTime<Utc>,
    facts: &'a Facts,
}

/// A `RequestApproval` whose fields have been validated.
#[derive(Debug, PartialEq)]
struct Asked {
    subject: Subject,
    amount: Money,
    requester_id: Uuid,
}

impl Decide for Approval {
    type Facts = Facts;

    async fn gather(
        &self,
        command: &Command<ApprovalCommand>,
        services: &Services,
    ) -> Result<Facts, DomainError> {
        Facts::gather(services.as_ref(), self.request.as_ref(), command).await
    }

    fn decide(
        &self,
        command: Command<ApprovalCommand>,
        facts: &Facts,
    ) -> Result<Vec<ApprovalEvent>, DomainError> {
        let Command {
            actor, at, body, ..
        } = command;
        let ctx = Ctx { actor, at, facts };
        let Some(request) = &self.request else {
            return match body {
                ApprovalCommand::RequestApproval {
                    subject_type,
                    subject_id,
                    subject_version,
                    amount,
                    currency,
                    requester_id,
                } => {
                    ctx.actor.require_system("RequestApproval")?;
                    let subject = (subject_type, subject_id, subject_version);
                    let asked = Asked::parse(subject, amount, &currency, requester_id)?;
                    asked.open(&ctx)
                }
                _ => Err(DomainError::NotFound("approval")),
            };
        };
        request.decide(&ctx, body)
    }
}

impl Asked {
    fn parse(
        (subject_type, id, version): (SubjectType, Uuid, u64),
        amount: Decimal,
        currency: &str,
        requester_id: Uuid,
    ) -> Result<Self, DomainError> {
        let subject = Subject {
            subject_type,
            id,
            version,
        };
        let currency = CurrencyCode::parse("currency", currency)?;
        let amount = Money::parse_amount("amount", amount, &MONEY, &currency)?;
        for (field, id) in [("subject_id", subject.id), ("requester_id", requester_id)] {
            if id.is_nil() {
                return Err(DomainError::invalid(field, "must not be the nil UUID"));
            }
        }
        Ok(Self {
            subject,
            amount,
            requester_id,
        })
    }
}

impl Asked {
    fn open(self, ctx: &Ctx) -> Decided {
        let policy = gathered(&ctx.facts.policy, "tenant policy")?;
        let roles = policy.approval_chain(&self.amount);
        if roles.is_empty() {
            return Err(DomainError::rule(
                RuleCode::NoApprovalChain,
                format!(
                    "the tenant policy names no approvers for {}",
                    self.amount.amount
                ),
            ));
        }
        if let Some(role) = roles.iter().find(|r| !APPROVER_ROLES.contains(r)) {
            return Err(DomainError::rule(
                RuleCode::InvalidApprovalChain,
                format!("the tenant policy names {role:?} as an approver"),
            ));
        }
        let due_at = ctx.at + policy.level_sla();
        Ok(vec![ApprovalEvent::ApprovalRequested {
            subject: self.subject,
            amount: self.amount,
            requester_id: self.requester_id,
            levels: roles
                .into_iter()
                .map(|role| Level { role, due_at })
                .collect(),
        }])
    }
}

impl Request {
    fn decide(&self, ctx: &Ctx, body: ApprovalCommand) -> Decided {
        use ApprovalCommand as C;
        match body {
            C::RequestApproval {
                subject_type,
                subject_id,
                subject_version,
                amount,
                currency,
                requester_id,
            } => {
                ctx.actor.require_system("RequestApproval")?;
                let subject = (subject_type, subject_id, subject_version);
                self.repeat(Asked::parse(subject, amount, &currency, requester_id)?)
            }
            _ if self.status != ApprovalStatus::Pending => Err(DomainError::rule(
                RuleCode::ApprovalClosed,
                format!("the approval is already {:?}", self.status),
            )),
            C::ApproveLevel { comment } => self.approve(ctx, comment),
            C::RejectApproval { reason } => self.reject(ctx, reason),
            C::DelegateLevel { to_user_id } => self.delegate(ctx, to_user_id),
            C::EscalateLevel {} => self.escalate(ctx),
            C::CancelApproval { reason } => self.cancel(ctx, reason),
        }
    }

    /// The process manager delivers at least once: asking again for the same submission is a
    /// retry and changes nothing; anything else under this id is a mistake.
    fn repeat(&self, asked: Asked) -> Decided {
        let same = asked.subject == self.subject
            && asked.amount == self.amount
            && asked.requester_id == self.requester_id;
        if same {
            Ok(vec![])
        } else {
            Err(DomainError::rule(
                RuleCode::ApprovalExists,
                "an approval with this id was already requested for another submission",
            ))
        }
    }

    fn approve(&self, ctx: &Ctx, comment: Option<String>) -> Decided {
        let approver_id = self.require_approver(ctx, "ApproveLevel")?;
        let comment = comment
            .map(|c| Text::parse("comment", &c, REASON_MAX))
            .transpose()?;
        let level = number(self.current);
        if self.current + 1 == self.levels.len() {
            return Ok(vec![
                ApprovalEvent::LevelApproved {
                    level,
                    approver_id,
                    comment,
                    next_due_at: None,
                },
                ApprovalEvent::ApprovalGranted {
                    subject: self.subject.clone(),
                },
            ]);
        }
        // The next level gets its whole SLA from now, not what is left of the request's.
        let policy = gathered(&ctx.facts.policy, "tenant policy")?;
        Ok(vec![ApprovalEvent::LevelApproved {
            level,
            approver_id,
            comment,
            next_due_at: Some(ctx.at + policy.level_sla()),
        }])
    }

    fn reject(&self, ctx: &Ctx, reason: String) -> Decided {
        // Rejecting decides the level just as approving does, so the same people may do it.
        let approver_id = self.require_approver(ctx, "RejectApproval")?;
        let reason = Text::parse("reason", &reason, REASON_MAX)?;
        Ok(vec![ApprovalEvent::ApprovalRejected {
            subject: self.subject.clone(),
            level: number(self.current),
            approver_id,
            reason,
        }])
    }

    fn delegate(&self, ctx: &Ctx, to: Uuid) -> Decided {
        let from = self.require_delegator(&ctx.actor)?;
        if self.level().delegate == Some(to) {
            return Ok(vec![]);
        }
        let facts = ctx.facts.delegate.as_ref().ok_or_else(|| {
            DomainError::rule(RuleCode::DelegateUnknown, "no such user in this tenant")
        })?;
        self.fitness(facts)
            .map_err(|unfit| DomainError::rule(unfit.delegate_code(), self.reason(&unfit)))?;
        Ok(vec![ApprovalEvent::LevelDelegated {
            level: number(self.current),
            from,
            to,
        }])
    }

    fn escalate(&self, ctx: &Ctx) -> Decided {
        ctx.actor.require_system("EscalateLevel")?;
        let level = self.level();
        // The timer fires at the due time, so reaching it counts as overdue.
        if ctx.at < level.due_at {
            return Err(DomainError::rule(
                RuleCode::LevelNotOverdue,
                format!(
                    "level {} is due at {}",
                    number(self.current),
                    level.due_at.to_rfc3339()
                ),
            ));
        }
        let policy = gathered(&ctx.facts.policy, "tenant policy")?;
        Ok(vec![ApprovalEvent::LevelEscalated {
            level: number(self.current),
            from_role: level.role,
            to_role: next_higher(level.role),
            overdue_since: level.due_at,
            new_due_at: ctx.at + policy.level_sla(),
        }])
    }

    /// The requester cancels their own request; the approval process cancels the request of
    /// a subject that was withdrawn.
    fn cancel(&self, ctx: &Ctx, reason: String) -> Decided {
        if !ctx.actor.is_system() {
            let (user_id, _) = user_of(&ctx.actor, "CancelApproval")?;
            if user_id != self.requester_id {
                return Err(DomainError::Forbidden(
                    "only the requester may cancel an approval".to_owned(),
                ));
            }
        }
        Ok(vec![ApprovalEvent::ApprovalCancelled {
            subject: self.subject.clone(),
            reason: Text::parse("reason", &reason, REASON_MAX)?,
        }])
    }

    /// The actor may decide the current level: it is delegated to them, or it is not delegated
    /// at all; and their current facts (roles, activity, limit) qualify them now, however they
    /// qualified when the level was handed to them. Returns their id.
    fn require_approver(&self, ctx: &Ctx, action: &str) -> Result<Uuid, DomainError> {
        let (user_id, _) = user_of(&ctx.actor, action)?;
        if self.level().delegate.is_some_and(|d| d != user_id) {
            return Err(DomainError::Forbidden(format!(
                "level {} is delegated to another user",
                number(self.current)
            )));
        }
        let forbid =
            |unfit: Unfit| DomainError::Forbidden(format!("{action}: {}", self.reason(&unfit)));
        self.independent(user_id).map_err(forbid)?;
        let facts = ctx
            .facts
            .approver
            .as_ref()
            .ok_or_else(|| DomainError::Forbidden(format!("{action}: unknown user")))?;
        self.fitness(facts).map_err(forbid)?;
        Ok(user_id)
    }

    /// Who may hand the current level on: whoever may decide it now, or a TenantAdmin. Never
    /// the requester, who would be choosing their own approver.
    fn require_delegator(&self, actor: &Actor) -> Result<Uuid, DomainError> {
        let (user_id, roles) = user_of(actor, "DelegateLevel")?;
        let level = self.level();
        let decides_now = match level.delegate {
            Some(delegate) => delegate == user_id,
            None => roles.contains(&level.role) && self.independent(user_id).is_ok(),
        };
        if user_id == self.requester_id || !(decides_now || roles.contains(&Role::TenantAdmin)) {
            return Err(DomainError::Forbidden(format!(
                "DelegateLevel: only the level's approver or a TenantAdmin may delegate level {}",
                number(self.current)
            )));
        }
        Ok(user_id)
    }

    /// Whether `facts`, as the user's stream says now, qualify them to approve the current
    /// level.
    fn fitness(&self, facts: &UserFacts) -> Result<(), Unfit> {
        self.independent(facts.user_id)?;
        if !facts.active {
            return Err(Unfit::Inactive);
        }
        let role = self.level().role;
        if !facts.roles.contains(&role) {
            return Err(Unfit::LacksRole(role));
        }
        limit_covers(facts.approval_limit.as_ref(), &self.amount)
    }

    /// The user neither requested this approval nor approved one of its levels.
    fn independent(&self, user_id: Uuid) -> Result<(), Unfit> {
        if user_id == self.requester_id {
            return Err(Unfit::Requester);
        }
        match self
            .levels
            .iter()
            .position(|l| l.approved_by == Some(user_id))
        {
            Some(index) => Err(Unfit::ApprovedLevel(number(index))),
            None => Ok(()),
        }
    }

    fn reason(&self, unfit: &Unfit) -> String {
        unfit.reason(&self.amount)
    }

    fn level(&self) -> &LevelState {
        self.levels
            .get(self.current)
            .expect("a pending request has a current level")
    }
}

/// Escalation moves a level one step up; a TenantAdmin level stays with TenantAdmins.
fn next_higher(role: Role) -> Role {
    match role {
        Role::Operator => Role::Manager,
        _ => Role::TenantAdmin,
    }
}

fn user_of<'a>(actor: &'a Actor, action: &str) -> Result<(Uuid, &'a [Role]), DomainError> {
    match actor {
        Actor::User { user_id, roles, .. } => Ok((*user_id, roles)),
        Actor::System { .. } => Err(DomainError::Forbidden(format!(
            "{action} is done by a user, not by the system"
        ))),
    }
}
