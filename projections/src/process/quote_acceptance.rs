//! What follows an accepted quote: a contract drafted from it, and its account made Active.
use aggregates::account::{Account, AccountCommand};
use aggregates::contract::{Contract, ContractCommand, QuoteLine};
use aggregates::quote::{LineItem, Quote, QuoteEvent, QuoteTotals};
use aggregates::{RuleCode, Text};
use async_trait::async_trait;
use chrono::{Months, NaiveDate};
use cqrs_es::Aggregate;
use event_store::StoredEvent;
use sqlx::PgConnection;
use uuid::Uuid;

use super::issue::{Issuer, Order};
use super::Reactor;
use super::{aggregate_uuid, decode, ACCOUNT_REFUSALS};
use crate::ProjectionError;

/// Ids tried for a quote's contract before giving up: users cannot compute them, so a clash
/// means the deployment's key leaked; the draft moves on to the next id rather than park.
const CONTRACT_ID_CANDIDATES: u32 = 4;

/// Quote accepted → `DraftContractFromQuote` and `ActivateAccount` (a no-op unless the account
/// is a Prospect).
pub struct QuoteAcceptance {
    issuer: Issuer,
}

impl QuoteAcceptance {
    pub fn new(issuer: Issuer) -> Self {
        Self { issuer }
    }
}

#[async_trait]
impl Reactor for QuoteAcceptance {
    const NAME: &'static str = "process.quote-acceptance";
    const SUBSCRIBES: &'static [(&'static str, &'static str)] = &[(Quote::TYPE, "QuoteAccepted")];

    async fn react(
        &self,
        _: &mut PgConnection,
        event: &StoredEvent,
    ) -> Result<(), ProjectionError> {
        let QuoteEvent::QuoteAccepted {
            account_id,
            title,
            lines,
            totals,
        } = decode(event)?
        else {
            return Ok(());
        };
        let quote_id = aggregate_uuid(event)?;
        let accepted_on = event.recorded_at.date_naive();
        let draft = contract_from_quote(quote_id, account_id, &title, &lines, &totals, accepted_on)
            .ok_or_else(|| ProjectionError::inconsistent(event, "no end date a year on"))?;
        self.draft_contract(event, draft).await?;
        let order = Order {
            aggregate_id: account_id,
            name: "ActivateAccount",
            body: AccountCommand::ActivateAccount { quote_id },
            settled: ACCOUNT_REFUSALS,
        };
        self.issuer.issue::<Account>(event, order).await
    }
}

impl QuoteAcceptance {
    /// The contract's id is the acceptance event's, or (if a contract that is not this quote's
    /// holds it) the next derived candidate: the same sequence on every redelivery, so a retry
    /// finds its own draft.
    async fn draft_contract(
        &self,
        event: &StoredEvent,
        draft: ContractCommand,
    ) -> Result<(), ProjectionError> {
        let ids = &self.issuer.ids;
        let mut outcome = Ok(());
        for candidate in 0..CONTRACT_ID_CANDIDATES {
            let aggregate_id = match candidate {
                0 => ids.of_event(event),
                n => ids.derived(event, &format!("contract/{n}")),
            };
            let order = Order {
                aggregate_id,
                name: "DraftContractFromQuote",
                body: draft.clone(),
                settled: ACCOUNT_REFUSALS,
            };
            outcome = self.issuer.issue::<Contract>(event, order).await;
            match &outcome {
                Err(error) if error.is_refusal(RuleCode::ContractExists) => continue,
                _ => break,
            }
        }
        outcome
    }
}

/// The draft copies the accepted terms: lines field by field, the total as the value, a one-year
/// term from the acceptance date. Every field comes from the event, so a retry sends the same.
fn contract_from_quote(
    quote_id: Uuid,
    account_id: Uuid,
    title: &Text,
    lines: &[LineItem],
    totals: &QuoteTotals,
    start_date: NaiveDate,
) -> Option<ContractCommand> {
    let end_date = start_date.checked_add_months(Months::new(12))?;
    Some(ContractCommand::DraftContractFromQuote {
        quote_id,
        account_id,
        title: title.as_str().to_owned(),
        lines: lines.iter().map(quote_line).collect(),
        total: totals.total.amount,
        currency: totals.total.currency.as_str().to_owned(),
        start_date,
        end_date,
        terms: format!("Per accepted quote {quote_id}"),
    })
}

fn quote_line(line: &LineItem) -> QuoteLine {
    QuoteLine {
        sku: line.sku.as_str().to_owned(),
        description: line.description.as_str().to_owned(),
        quantity: line.quantity,
        unit: line.unit,
        unit_price: line.unit_price,
        volume_discount_percent: line.volume_discount_percent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aggregates::{CurrencyCode, Money};
    use rust_decimal::Decimal;

    fn money(amount: i64) -> Money {
        Money {
            amount: Decimal::from(amount),
            currency: CurrencyCode::parse("currency", "EUR").unwrap(),
        }
    }

    #[test]
    fn a_contract_from_a_quote_runs_a_year_from_acceptance_at_the_quote_total() {
        let (quote_id, account_id) = (Uuid::new_v4(), Uuid::new_v4());
        let line = LineItem {
            line_id: Uuid::new_v4(),
            sku: Text::parse("sku", "SKU-1", 64).unwrap(),
            description: Text::parse("description", "Widgets", 100).unwrap(),
            quantity: Decimal::from(3),
            unit: aggregates::quote::Unit::Month,
            unit_price: Decimal::from(100),
            volume_discount_percent: Decimal::from(2),
        };
        let totals = QuoteTotals {
            subtotal: money(300),
            line_discounts: money(6),
            quote_discount: money(0),
            total: money(294),
        };
        let title = Text::parse("title", "Deal", 100).unwrap();
        let start = NaiveDate::from_ymd_opt(2024, 2, 29).unwrap();
        let draft =
            contract_from_quote(quote_id, account_id, &title, &[line], &totals, start).unwrap();
        let ContractCommand::DraftContractFromQuote {
            lines,
            total,
            end_date,
            terms,
            ..
        } = draft
        else {
            panic!("not a draft from a quote: {draft:?}");
        };
        assert_eq!(total, Decimal::from(294));
        assert_eq!(end_date, NaiveDate::from_ymd_opt(2025, 2, 28).unwrap());
        assert_eq!(terms, format!("Per accepted quote {quote_id}"));
        assert_eq!(lines[0].sku, "SKU-1");
        assert_eq!(lines[0].volume_discount_percent, Decimal::from(2));
        assert_eq!(lines[0].unit, aggregates::quote::Unit::Month);
    }
}
