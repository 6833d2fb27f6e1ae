//! The tenant policy: currencies and approval chains.
use super::*;

#[tokio::test]
async fn a_contract_is_drafted_only_in_a_currency_the_tenant_trades_in() {
    let in_currency = |currency: &str| C::DraftContract {
        account_id: ACCOUNT,
        title: "Support".into(),
        value: money("1000.00"),
        currency: currency.into(),
        start_date: date(START),
        end_date: date(END),
        terms: "Net 30".into(),
    };
    expect_err(
        vec![],
        by(operator(), in_currency("XAU")),
        invalid("currency"),
    )
    .await;
    expect_err(
        vec![],
        by(operator(), in_currency("SEK")),
        rule(RuleCode::CurrencyNotAllowed),
    )
    .await;
}

/// A contract always goes through approval: without a chain for its amount it would wait for
/// ever, so submission refuses it, as a quote's does.
#[tokio::test]
async fn a_contract_without_an_approval_chain_for_its_currency_is_not_submitted() {
    struct NoChains;
    #[async_trait]
    impl ContractServices for NoChains {
        async fn account(&self, _: Uuid, _: Uuid) -> Result<Option<AccountFacts>, DomainError> {
            Ok(None)
        }

        async fn policy(&self, _tenant_id: Uuid) -> Result<TenantPolicy, DomainError> {
            let mut policy = TenantPolicy::default();
            policy.currencies.remove("EUR");
            Ok(policy)
        }
    }
    let result = Given::with(Arc::new(NoChains))
        .given(vec![drafted()])
        .when_async(by(operator(), C::SubmitContract {}))
        .await
        .inspect_result();
    assert!(
        matches!(result, Err(ref e) if rule(RuleCode::NoApprovalChain)(e)),
        "{result:?}"
    );
}
