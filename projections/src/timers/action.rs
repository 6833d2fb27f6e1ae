//! What a timer does when it fires. Stored as JSON in `scheduled_commands.command`; our own small
//! enum rather than the aggregates' command enums, so the stored form is ours to keep stable.
use aggregates::approval::Approval;
use aggregates::contract::Contract;
use aggregates::quote::Quote;
use aggregates::RuleCode;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr)]
pub enum TimerAction {
    /// On the quote's valid-until.
    ExpireQuote {},
    /// When the approval's current level is due (its SLA).
    EscalateLevel {},
    /// On the contract's start date, once approved and signed.
    ActivateContract {},
    /// On the contract's (current) end date.
    ExpireContract {},
}

impl TimerAction {
    pub fn name(self) -> &'static str {
        self.into()
    }

    /// The aggregate type the command runs against.
    pub fn aggregate_type(self) -> &'static str {
        match self {
            Self::ExpireQuote {} => Quote::TYPE,
            Self::EscalateLevel {} => Approval::TYPE,
            Self::ActivateContract {} | Self::ExpireContract {} => Contract::TYPE,
        }
    }

    /// Refusals (rule codes) meaning the timer no longer applies: the aggregate moved on, so
    /// the timer is done, not failed. Another event scheduled its own timer if one is needed
    /// (a later level's SLA, a renewal's end date, the second signature).
    pub fn no_longer_applies(self) -> &'static [RuleCode] {
        match self {
            // Accepted, declined or withdrawn before it ran out.
            Self::ExpireQuote {} => &[RuleCode::QuoteClosed],
            // The level was approved or escalated (its successor has a later due time), or the
            // request ended.
            Self::EscalateLevel {} => &[RuleCode::ApprovalClosed, RuleCode::LevelNotOverdue],
            // Not approved or not fully signed yet: the missing approval or signature
            // schedules activation again.
            Self::ActivateContract {} => {
                &[RuleCode::ContractNotApproved, RuleCode::ContractNotSigned]
            }
            // Renewed (a later end date) or no longer active.
            Self::ExpireContract {} => &[RuleCode::BeforeEndDate, RuleCode::ContractNotActive],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stored_form_names_the_action() {
        let json = serde_json::to_value(TimerAction::EscalateLevel {}).unwrap();
        assert_eq!(json, serde_json::json!({ "EscalateLevel": {} }));
        let back: TimerAction = serde_json::from_value(json).unwrap();
        assert_eq!(back, TimerAction::EscalateLevel {});
    }
}
