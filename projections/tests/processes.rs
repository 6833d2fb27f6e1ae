//! Process managers and durable timers against the real stack: Postgres, RabbitMQ, the relay.
//! Needs `deploy/local/stack.sh up` and `source deploy/local/env.sh`.
mod process_support;
mod support;

use aggregates::approval::{Approval, ApprovalCommand};
use aggregates::contract::{ContractCommand, Party};
use aggregates::quote::QuoteCommand;
use aggregates::Role;
use chrono::Duration;
use process_support::ProcessStack;
use projections::process::ProcessIds;
use rust_decimal::Decimal;
use uuid::Uuid;

/// Above the default tenant threshold (10,000): Manager, then TenantAdmin.
const LARGE: i64 = 20_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approved_and_accepted_quote_drafts_one_contract_and_redeliveries_change_nothing() {
    let mut env = ProcessStack::new(2).await;
    env.start_processes();
    let operator = env.operator();
    let manager = env.approver(Role::Manager).await;
    let admin = env.approver(Role::TenantAdmin).await;
    let account_id = env.account().await;
    let quote_id = env.draft_quote(account_id, LARGE, Duration::days(30)).await;

    // (a) One submission above the threshold: exactly one approval request, on the id
    // derived from the submission event.
    env.quote(&operator, quote_id, QuoteCommand::SubmitQuote {})
        .await;
    let submitted = env.wait_for("Quote", quote_id, "QuoteSubmitted").await;
    let approval_id = env.ids.of_event(&submitted);
    let requested = env
        .wait_for("Approval", approval_id, "ApprovalRequested")
        .await;
    assert_eq!(
        requested.meta("system_process"),
        Some("process.approvals"),
        "issued by the approval process"
    );
    // The cause is named by its public, recomputable id; the approval's own id is keyed.
    let cause = ProcessIds::causation_of(&submitted);
    assert_eq!(requested.meta_uuid("causation_id"), Some(cause));
    assert_eq!(
        cause,
        Uuid::new_v5(
            &projections::process::NAMESPACE,
            submitted.message_id().as_bytes()
        )
    );
    assert_ne!(approval_id, cause);
    assert_eq!(
        requested.meta("correlation_id"),
        submitted.meta("correlation_id"),
        "the chain keeps the submission's correlation"
    );
    for approver in [&manager, &admin] {
        let approve = ApprovalCommand::ApproveLevel { comment: None };
        env.approval(approver, approval_id, approve).await;
    }
    env.wait_for("Quote", quote_id, "QuoteApproved").await;
    assert_eq!(
        env.stream_ids("Approval").await,
        vec![approval_id.to_string()]
    );

    // (c) Sent and accepted: one contract drafted from it, the Prospect account made Active.
    env.quote(&operator, quote_id, QuoteCommand::SendQuote {})
        .await;
    env.quote(&operator, quote_id, QuoteCommand::AcceptQuote {})
        .await;
    let accepted = env.wait_for("Quote", quote_id, "QuoteAccepted").await;
    let contract_id = env.ids.of_event(&accepted);
    let drafted = env
        .wait_for("Contract", contract_id, "ContractDraftedFromQuote")
        .await;
    let draft = &drafted.payload["ContractDraftedFromQuote"];
    assert_eq!(draft["quote_id"], quote_id.to_string());
    assert_eq!(draft["value"], "20000.00");
    assert_eq!(draft["terms"], format!("Per accepted quote {quote_id}"));
    assert_eq!(draft["lines"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        draft["lines"][0]["unit"], "Hour",
        "the quote's unit carries over"
    );
    assert_eq!(drafted.event_version, "1.1");
    env.wait_for("Account", account_id, "AccountActivated")
        .await;
    assert_eq!(
        env.stream_ids("Contract").await,
        vec![contract_id.to_string()]
    );

    // (b) Every event delivered again: nothing changes. First as plain redeliveries (the
    // checkpoints skip them), then with the process checkpoints gone, as after a crash between
    // a command and its checkpoint: every command is issued again and each is a no-op.
    env.processed_everything().await;
    let before = env.all_events().await;
    env.stack.publish(&before).await;
    env.queues_drained().await;
    sqlx::query("delete from projection_checkpoints where projection like 'process.%'")
        .execute(&env.stack.admin)
        .await
        .unwrap();
    env.stack.publish(&before).await;
    env.processed_everything().await;
    env.queues_drained().await;
    let after = env.all_events().await;
    assert_eq!(
        after.len(),
        before.len(),
        "redeliveries added events: {:?}",
        &after[before.len().min(after.len())..]
    );
    assert_eq!(env.stream_ids("Approval").await.len(), 1);
    assert_eq!(env.stream_ids("Contract").await.len(), 1);
    assert_eq!(env.parked().await, 0, "nothing was parked");
    env.tear_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timers_expire_quotes_and_escalate_overdue_levels_and_survive_a_restart() {
    let mut env = ProcessStack::new(2).await;
    env.start_processes();
    env.start_timers();
    let operator = env.operator();
    let account_id = env.account().await;
    let expiring = env.draft_quote(account_id, 100, Duration::hours(1)).await;
    let pending = env.draft_quote(account_id, LARGE, Duration::days(30)).await;
    env.quote(&operator, pending, QuoteCommand::SubmitQuote {})
        .await;
    let submitted = env.wait_for("Quote", pending, "QuoteSubmitted").await;
    let approval_id = env.ids.of_event(&submitted);
    env.wait_for("Approval", approval_id, "ApprovalRequested")
        .await;
    env.processed_everything().await;
    let scheduled: i64 =
        sqlx::query_scalar("select count(*) from scheduled_commands where done_at is null")
            .fetch_one(&env.stack.admin)
            .await
            .unwrap();
    assert_eq!(scheduled, 3, "two quote expiries and one escalation");

    // Nothing is due yet; then the worker goes away while the schedule stays in the table.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(!env
        .event_types("Quote", expiring)
        .await
        .contains(&"QuoteExpired".to_owned()));
    env.stop_timers().await;
    env.move_clock(Duration::hours(25)).await;
    env.start_timers();

    env.wait_for("Quote", expiring, "QuoteExpired").await;
    let escalated = env
        .wait_for("Approval", approval_id, "LevelEscalated")
        .await;
    assert_eq!(escalated.meta("system_process"), Some("timer"));
    assert_eq!(escalated.payload["LevelEscalated"]["from_role"], "Manager");
    // The escalation scheduled the next SLA timer, due a day after the moved clock.
    env.processed_everything().await;
    let open: Vec<(String, bool)> = sqlx::query_as(
        "select command::text, due_at > clock_timestamp() + interval '25 hours' \
         from scheduled_commands where done_at is null order by due_at",
    )
    .fetch_all(&env.stack.admin)
    .await
    .unwrap();
    assert_eq!(
        open,
        vec![
            (r#"{"EscalateLevel": {}}"#.to_owned(), true),
            (r#"{"ExpireQuote": {}}"#.to_owned(), true),
        ],
        "the pending quote's expiry and the new level's escalation stay scheduled"
    );
    let escalations = env
        .event_types("Approval", approval_id)
        .await
        .into_iter()
        .filter(|t| t == "LevelEscalated")
        .count();
    assert_eq!(escalations, 1, "the overdue level escalated once");
    env.tear_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approved_signed_contract_activates_on_its_start_date_and_expires_at_its_end() {
    let mut env = ProcessStack::new(2).await;
    env.start_processes();
    env.start_timers();
    let operator = env.operator();
    let manager = env.approver(Role::Manager).await;
    let account_id = env.account().await;
    let contract_id = Uuid::new_v4();
    let today = env.now().await.date_naive();
    let draft = ContractCommand::DraftContract {
        account_id,
        title: "Support".to_owned(),
        value: Decimal::from(5_000),
        currency: "EUR".to_owned(),
        start_date: today,
        end_date: today + Duration::days(1),
        terms: "Net 30".to_owned(),
    };
    env.contract(&operator, contract_id, draft).await;
    env.contract(&operator, contract_id, ContractCommand::SubmitContract {})
        .await;

    // The submitting user is the requester; one Manager level for this amount.
    let submitted = env
        .wait_for("Contract", contract_id, "ContractSubmitted")
        .await;
    let approval_id = env.ids.of_event(&submitted);
    let requested = env
        .wait_for("Approval", approval_id, "ApprovalRequested")
        .await;
    let request = &requested.payload["ApprovalRequested"];
    assert_eq!(request["requester_id"], env.stack.user_id.to_string());
    assert_eq!(request["subject"]["subject_type"], "Contract");
    let approve = ApprovalCommand::ApproveLevel { comment: None };
    env.approval(&manager, approval_id, approve).await;
    env.wait_for("Contract", contract_id, "ContractApproved")
        .await;

    // Approved but unsigned: the start-date timer finds nothing to do yet; the second
    // signature's timer activates it.
    for party in [Party::Customer, Party::Vendor] {
        let sign = ContractCommand::SignContract {
            party,
            signatory_name: "Pat Signer".to_owned(),
            signatory_email: "pat@example.com".to_owned(),
        };
        env.contract(&operator, contract_id, sign).await;
    }
    let activated = env
        .wait_for("Contract", contract_id, "ContractActivated")
        .await;
    assert_eq!(activated.meta("system_process"), Some("timer"));
    env.wait_for("Account", account_id, "ContractActivatedOnAccount")
        .await;

    env.move_clock(Duration::days(2)).await;
    env.wait_for("Contract", contract_id, "ContractExpired")
        .await;
    env.wait_for("Account", account_id, "ContractEndedOnAccount")
        .await;
    env.processed_everything().await;
    let failing: i64 =
        sqlx::query_scalar("select count(*) from scheduled_commands where done_at is null")
            .fetch_one(&env.stack.admin)
            .await
            .unwrap();
    assert_eq!(failing, 0, "every contract timer ran or no longer applied");
    assert_eq!(env.parked().await, 0);
    env.tear_down().await;
}

/// DOMAIN.md: withdrawing a quote cancels its open approval, which nobody can then approve;
/// the cancellation's outcome leaves the withdrawn quote as it is, and nothing parks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn withdrawing_a_quote_cancels_its_open_approval() {
    let mut env = ProcessStack::new(2).await;
    env.start_processes();
    let operator = env.operator();
    let manager = env.approver(Role::Manager).await;
    let account_id = env.account().await;
    let quote_id = env.draft_quote(account_id, LARGE, Duration::days(30)).await;
    env.quote(&operator, quote_id, QuoteCommand::SubmitQuote {})
        .await;
    let submitted = env.wait_for("Quote", quote_id, "QuoteSubmitted").await;
    let approval_id = env.ids.of_event(&submitted);
    env.wait_for("Approval", approval_id, "ApprovalRequested")
        .await;

    let withdraw = QuoteCommand::WithdrawQuote {
        reason: "customer went elsewhere".to_owned(),
    };
    env.quote(&operator, quote_id, withdraw).await;
    let cancelled = env
        .wait_for("Approval", approval_id, "ApprovalCancelled")
        .await;
    assert_eq!(
        cancelled.payload["ApprovalCancelled"]["reason"],
        "the quote was withdrawn: customer went elsewhere"
    );
    assert_eq!(cancelled.meta("system_process"), Some("process.approvals"));
    env.processed_everything().await;
    let approve = ApprovalCommand::ApproveLevel { comment: None };
    let at = env.now().await;
    let refused = env
        .bus
        .store::<Approval>()
        .execute(
            &approval_id.to_string(),
            aggregates::Command::new(env.stack.tenant_id, manager.clone(), at, approve),
            None,
            &env.metadata(&manager, at),
        )
        .await;
    assert!(refused.is_err(), "a cancelled approval cannot be approved");
    assert_eq!(
        env.event_types("Quote", quote_id)
            .await
            .last()
            .map(String::as_str),
        Some("QuoteWithdrawn"),
        "the quote stays withdrawn"
    );
    assert_eq!(env.parked().await, 0, "nothing was parked");
    env.tear_down().await;
}

/// The ids processes create at are keyed with the deployment's secret: another deployment (or a
/// user who knows every public namespace) derives other ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_ids_are_keyed_per_deployment() {
    let (one, two) = (ProcessStack::new(1).await, ProcessStack::new(1).await);
    let account_id = one.account().await;
    let quote_id = one.draft_quote(account_id, 100, Duration::days(30)).await;
    let drafted = one.wait_for("Quote", quote_id, "QuoteDrafted").await;
    let ids = [one.ids.of_event(&drafted), two.ids.of_event(&drafted)];
    assert_ne!(ids[0], ids[1], "two deployments, two keys");
    assert_eq!(ids[0], one.ids.of_event(&drafted), "one event, one id");
    let public = Uuid::new_v5(&Uuid::NAMESPACE_OID, drafted.message_id().as_bytes());
    assert_ne!(ids[0], public);
    assert_ne!(
        one.ids.derived(&drafted, "a"),
        one.ids.derived(&drafted, "b")
    );
    one.tear_down().await;
    two.tear_down().await;
}

/// Were a contract already at the id the acceptance process derives (only possible with the
/// key), the draft moves to the next derived id: the account still becomes Active, nothing
/// parks, and a redelivery finds the same draft.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_occupied_contract_id_never_parks_the_acceptance() {
    let mut env = ProcessStack::new(2).await;
    env.start_processes();
    let operator = env.operator();
    let account_id = env.account().await;
    let quote_id = env.draft_quote(account_id, 100, Duration::days(30)).await;
    env.quote(&operator, quote_id, QuoteCommand::SubmitQuote {})
        .await;
    let sent = env
        .quote(&operator, quote_id, QuoteCommand::SendQuote {})
        .await;
    // The acceptance will be the next event of the quote's stream: occupy its contract id.
    let mut acceptance = env.stream("Quote", quote_id).await.pop().unwrap();
    acceptance.sequence = sent as i64 + 1;
    let occupied = env.ids.of_event(&acceptance);
    let today = env.now().await.date_naive();
    let squatter = ContractCommand::DraftContract {
        account_id,
        title: "Squatter".into(),
        value: Decimal::ONE,
        currency: "EUR".into(),
        start_date: today,
        end_date: today + Duration::days(30),
        terms: "None".into(),
    };
    env.contract(&operator, occupied, squatter).await;

    env.quote(&operator, quote_id, QuoteCommand::AcceptQuote {})
        .await;
    let accepted = env.wait_for("Quote", quote_id, "QuoteAccepted").await;
    assert_eq!(env.ids.of_event(&accepted), occupied);
    let moved = env.ids.derived(&accepted, "contract/1");
    env.wait_for("Contract", moved, "ContractDraftedFromQuote")
        .await;
    env.wait_for("Account", account_id, "AccountActivated")
        .await;
    env.processed_everything().await;
    let before = env.all_events().await;
    sqlx::query("delete from projection_checkpoints where projection like 'process.%'")
        .execute(&env.stack.admin)
        .await
        .unwrap();
    env.stack.publish(&before).await;
    env.processed_everything().await;
    env.queues_drained().await;
    assert_eq!(
        env.all_events().await.len(),
        before.len(),
        "redelivery added events"
    );
    assert_eq!(
        env.event_types("Contract", occupied).await,
        ["ContractDrafted"]
    );
    assert_eq!(env.parked().await, 0, "nothing was parked");
    env.tear_down().await;
}
