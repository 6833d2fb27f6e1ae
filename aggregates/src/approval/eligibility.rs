//! Why a user may not approve a level. The same reasons refuse an approver (403: an attribute
//! rule denies the actor) and a delegation target (422: the named user does not qualify), so
//! they are listed once.
use crate::{Money, Role, RuleCode};

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Unfit {
    /// Nobody approves what they requested.
    Requester,
    /// One person approves at most one level of a request.
    ApprovedLevel(u32),
    LacksRole(Role),
    Inactive,
    NoLimit,
    LimitTooLow(Money),
    /// Limits are not converted: a limit in another currency does not cover the amount.
    LimitInOtherCurrency(Money),
}

impl Unfit {
    /// The stable code when the unfit user is the one a level is delegated to.
    pub(super) fn delegate_code(&self) -> RuleCode {
        match self {
            Self::Requester => RuleCode::DelegateIsRequester,
            Self::ApprovedLevel(_) => RuleCode::DelegateApprovedALevel,
            Self::LacksRole(_) => RuleCode::DelegateLacksRole,
            Self::Inactive => RuleCode::DelegateInactive,
            Self::NoLimit | Self::LimitTooLow(_) | Self::LimitInOtherCurrency(_) => {
                RuleCode::DelegateLimitTooLow
            }
        }
    }

    pub(super) fn reason(&self, amount: &Money) -> String {
        let requested = format!("{} {}", amount.amount, amount.currency.as_str());
        match self {
            Self::Requester => "the requester cannot approve their own request".to_owned(),
            Self::ApprovedLevel(level) => {
                format!("already approved level {level}; one person approves one level")
            }
            Self::LacksRole(role) => format!("the level needs the role {role:?}"),
            Self::Inactive => "the user is deactivated".to_owned(),
            Self::NoLimit => format!("no approval limit covers {requested}"),
            Self::LimitTooLow(limit) => format!(
                "the approval limit {} {} is below {requested}",
                limit.amount,
                limit.currency.as_str()
            ),
            Self::LimitInOtherCurrency(limit) => format!(
                "the approval limit is in {}, the request in {}",
                limit.currency.as_str(),
                amount.currency.as_str()
            ),
        }
    }
}

/// Whether `limit` lets its holder approve `amount`.
pub(super) fn limit_covers(limit: Option<&Money>, amount: &Money) -> Result<(), Unfit> {
    let Some(limit) = limit else {
        return Err(Unfit::NoLimit);
    };
    if limit.currency != amount.currency {
        return Err(Unfit::LimitInOtherCurrency(limit.clone()));
    }
    if limit.amount < amount.amount {
        return Err(Unfit::LimitTooLow(limit.clone()));
    }
    Ok(())
}
