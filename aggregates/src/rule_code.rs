//! The stable, machine-readable reason a business rule refused a command.
//!
//! Each code's wire string (its variant name in snake_case) is public: the command API answers
//! `/problems/rule-violated/<code>`, and process managers and timers recognise the refusals
//! that mean "already done" by their code. Never rename one.

/// Why a business rule refused a command, as one stable code.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, strum::Display, strum::IntoStaticStr, strum::EnumIter,
)]
#[strum(serialize_all = "snake_case")]
pub enum RuleCode {
    // Accounts, also checked by the aggregates that act for one.
    AccountExists,
    AccountNotActive,
    AccountNotSuspended,
    AccountHasActiveContracts,
    AccountClosed,
    AccountSuspended,
    // Tenant policy.
    CurrencyNotAllowed,
    // Money: an amount with more decimals than its currency has.
    TooManyDecimals,
    // Users.
    UserExists,
    EmailInUse,
    LastTenantAdmin,
    NotAPartner,
    PartnerNeedsAccount,
    PartnerMovedByLinkOnly,
    NotAnApprover,
    UserDeactivated,
    UserNotDeactivated,
    /// The user was forgotten; their data is erased.
    UserForgotten,
    // Quotes.
    QuoteExists,
    QuoteNotDraft,
    QuoteNotPending,
    QuoteNotApproved,
    QuoteNotRejected,
    QuoteNotSent,
    QuoteClosed,
    QuoteHasNoLines,
    QuoteStillValid,
    QuoteValidityPassed,
    ValidUntilPassed,
    TooManyLines,
    UnknownLine,
    UnitPriceTooHigh,
    DuplicateLineId,
    ApprovalAlreadySettled,
    // Approvals.
    ApprovalExists,
    ApprovalClosed,
    NoApprovalChain,
    InvalidApprovalChain,
    LevelNotOverdue,
    DelegateUnknown,
    DelegateIsRequester,
    DelegateApprovedALevel,
    DelegateLacksRole,
    DelegateInactive,
    DelegateLimitTooLow,
    // Contracts.
    ContractExists,
    ContractNotDraft,
    ContractNotSubmittable,
    ContractNotPendingApproval,
    ContractNotApproved,
    ContractNotSigned,
    ContractNotActive,
    ContractNotAmendable,
    ContractNotRenewable,
    ContractEnded,
    AlreadySigned,
    BeforeStartDate,
    BeforeEndDate,
    RenewalWindowClosed,
    EndNotAfterStart,
    RenewalNotLater,
    EffectiveDateOutsideTerm,
    // API keys (auth::api_keys).
    ApiKeyExists,
    KeyExpiryOutOfRange,
    // Two-factor sign-in (auth::totp).
    TotpAlreadyEnabled,
    TotpCodeWrong,
    // Outgoing webhooks (webhooks::endpoint).
    WebhookExists,
    WebhookUrlNotAllowed,
    WebhookDisabled,
}

impl RuleCode {
    /// The code as the API and the logs spell it.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use strum::IntoEnumIterator;

    use super::RuleCode;

    #[test]
    fn every_wire_string_is_unique_and_snake_case() {
        let mut seen = HashSet::new();
        for code in RuleCode::iter() {
            let wire = code.as_str();
            assert!(seen.insert(wire), "{wire} is used twice");
            assert!(
                wire.split('_')
                    .all(|word| !word.is_empty() && word.chars().all(|c| c.is_ascii_lowercase())),
                "{wire} is not snake_case"
            );
            assert_eq!(code.to_string(), wire);
        }
    }

    /// The codes clients already match on: renaming a variant must not change its wire string.
    #[test]
    fn the_wire_strings_are_the_published_ones() {
        let published = [
            "account_closed",
            "account_exists",
            "account_has_active_contracts",
            "account_not_active",
            "account_not_suspended",
            "account_suspended",
            "already_signed",
            "api_key_exists",
            "approval_already_settled",
            "approval_closed",
            "approval_exists",
            "before_end_date",
            "before_start_date",
            "contract_ended",
            "contract_exists",
            "contract_not_active",
            "contract_not_amendable",
            "contract_not_approved",
            "contract_not_draft",
            "contract_not_pending_approval",
            "contract_not_renewable",
            "contract_not_signed",
            "contract_not_submittable",
            "currency_not_allowed",
            "delegate_approved_a_level",
            "delegate_inactive",
            "delegate_is_requester",
            "delegate_lacks_role",
            "delegate_limit_too_low",
            "delegate_unknown",
            "duplicate_line_id",
            "effective_date_outside_term",
            "email_in_use",
            "end_not_after_start",
            "invalid_approval_chain",
            "key_expiry_out_of_range",
            "last_tenant_admin",
            "level_not_overdue",
            "no_approval_chain",
            "not_a_partner",
            "not_an_approver",
            "partner_moved_by_link_only",
            "partner_needs_account",
            "quote_closed",
            "quote_exists",
            "quote_has_no_lines",
            "quote_not_approved",
            "quote_not_draft",
            "quote_not_pending",
            "quote_not_rejected",
            "quote_not_sent",
            "quote_still_valid",
            "quote_validity_passed",
            "renewal_not_later",
            "renewal_window_closed",
            "too_many_decimals",
            "too_many_lines",
            "totp_already_enabled",
            "totp_code_wrong",
            "unit_price_too_high",
            "unknown_line",
            "user_deactivated",
            "user_exists",
            "user_forgotten",
            "user_not_deactivated",
            "valid_until_passed",
            "webhook_disabled",
            "webhook_exists",
            "webhook_url_not_allowed",
        ];
        let mut wire: Vec<_> = RuleCode::iter().map(RuleCode::as_str).collect();
        wire.sort_unstable();
        assert_eq!(wire, published);
    }
}
