//! Drafting a contract, by a user from scratch or by the acceptance process from a quote.
use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::decide::EDITORS;
use super::facts::Facts;
use super::{ContractCommand, ContractEvent, ContractLine, QuoteLine};
use crate::account::{AccountFacts, AccountStatus};
use crate::limits::{DESCRIPTION_MAX, MONEY, SKU_MAX, TERMS_MAX, TITLE_MAX};
use crate::{Actor, CurrencyCode, DomainError, Money, RuleCode, Text};

/// The validated fields both ways of drafting share.
struct Draft {
    title: Text,
    value: Money,
    start_date: NaiveDate,
    end_date: NaiveDate,
    terms: Text,
}

/// Both ways of drafting: by a user from scratch, or by the acceptance process from a quote.
pub(super) fn draft(
    actor: &Actor,
    body: ContractCommand,
    facts: &Facts,
) -> Result<Vec<ContractEvent>, DomainError> {
    use ContractCommand as C;
    let event = match body {
        C::DraftContract {
            account_id,
            title,
            value,
            currency,
            start_date,
            end_date,
            terms,
        } => {
            actor.require_any(EDITORS, "DraftContract")?;
            let d = Draft::parse(
                &title, value, "value", &currency, start_date, end_date, &terms,
            )?;
            facts.policy()?.allow(&d.value.currency)?;
            ContractEvent::ContractDrafted {
                account_id,
                title: d.title,
                value: d.value.amount,
                currency: d.value.currency,
                start_date: d.start_date,
                end_date: d.end_date,
                terms: d.terms,
            }
        }
        C::DraftContractFromQuote {
            quote_id,
            account_id,
            title,
            lines,
            total,
            currency,
            start_date,
            end_date,
            terms,
        } => {
            actor.require_system("DraftContractFromQuote")?;
            let d = Draft::parse(
                &title, total, "total", &currency, start_date, end_date, &terms,
            )?;
            ContractEvent::ContractDraftedFromQuote {
                quote_id,
                account_id,
                title: d.title,
                lines: parse_lines(lines)?,
                value: d.value.amount,
                currency: d.value.currency,
                start_date: d.start_date,
                end_date: d.end_date,
                terms: d.terms,
            }
        }
        other => unreachable!("decide sends only drafts here, not {}", other.name()),
    };
    ensure_account_takes_contracts(facts.account.as_ref())?;
    Ok(vec![event])
}

impl Draft {
    fn parse(
        title: &str,
        value: Decimal,
        value_field: &str,
        currency: &str,
        start_date: NaiveDate,
        end_date: NaiveDate,
        terms: &str,
    ) -> Result<Self, DomainError> {
        let title = Text::parse("title", title, TITLE_MAX)?;
        let currency = CurrencyCode::parse("currency", currency)?;
        let value = Money::parse_amount(value_field, value, &MONEY, &currency)?;
        if end_date <= start_date {
            return Err(DomainError::rule(
                RuleCode::EndNotAfterStart,
                "the end date must be after the start date",
            ));
        }
        let terms = Text::parse("terms", terms, TERMS_MAX)?;
        Ok(Self {
            title,
            value,
            start_date,
            end_date,
            terms,
        })
    }
}

/// The accepted quote's lines: at least one, each with a positive quantity, a price that is
/// not negative and a discount between 0 and 100 %.
fn parse_lines(lines: Vec<QuoteLine>) -> Result<Vec<ContractLine>, DomainError> {
    if lines.is_empty() {
        return Err(DomainError::invalid(
            "lines",
            "an accepted quote has at least one line",
        ));
    }
    lines
        .into_iter()
        .enumerate()
        .map(|(i, line)| {
            let field = |name: &str| format!("lines[{i}].{name}");
            if line.quantity <= Decimal::ZERO {
                return Err(DomainError::invalid(field("quantity"), "must be positive"));
            }
            if line.unit_price < Decimal::ZERO {
                return Err(DomainError::invalid(
                    field("unit_price"),
                    "must not be negative",
                ));
            }
            if !(Decimal::ZERO..=Decimal::ONE_HUNDRED).contains(&line.volume_discount_percent) {
                return Err(DomainError::invalid(
                    field("volume_discount_percent"),
                    "must be between 0 and 100",
                ));
            }
            Ok(ContractLine {
                sku: Text::parse(&field("sku"), &line.sku, SKU_MAX)?,
                description: Text::parse(
                    &field("description"),
                    &line.description,
                    DESCRIPTION_MAX,
                )?,
                quantity: line.quantity,
                unit: line.unit,
                unit_price: line.unit_price,
                volume_discount_percent: line.volume_discount_percent,
            })
        })
        .collect()
}

/// Contracts are drafted only for an account of the tenant that is neither suspended nor
/// closed.
fn ensure_account_takes_contracts(account: Option<&AccountFacts>) -> Result<(), DomainError> {
    let facts = account.ok_or(DomainError::NotFound("account"))?;
    match facts.status {
        AccountStatus::Suspended => Err(DomainError::rule(
            RuleCode::AccountSuspended,
            "a suspended account gets no new contracts",
        )),
        AccountStatus::Closed => Err(DomainError::rule(
            RuleCode::AccountClosed,
            "a closed account gets no new contracts",
        )),
        AccountStatus::Prospect | AccountStatus::Active => Ok(()),
    }
}

pub(super) fn contract_exists() -> DomainError {
    DomainError::rule(
        RuleCode::ContractExists,
        "a contract with this id is already drafted",
    )
}
