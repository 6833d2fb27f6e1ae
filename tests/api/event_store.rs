use uuid::Uuid;

use crate::helpers::{open_account, Api, TestStack};

#[tokio::test]
async fn stored_events_cannot_be_updated_or_deleted_even_by_a_superuser() {
    let stack = TestStack::new().await;
    let tenant = stack.create_tenant("audit").await;
    let server = stack.spawn(&["command-api"]).await;
    let api = Api::new(&server);
    let token = api.login(&tenant).await;
    api.ok(&token, Uuid::new_v4(), open_account("Vandelay"))
        .await;

    for statement in [
        "update events set payload = '{}'",
        "delete from events",
        "truncate events",
    ] {
        let error = sqlx::query(statement).execute(&stack.db).await.unwrap_err();
        assert!(
            error.to_string().contains("events are immutable"),
            "{statement}: {error}"
        );
    }
    assert_eq!(stack.account_event_count().await, 1);
}

#[tokio::test]
async fn the_application_role_may_only_insert_and_read_events() {
    let stack = TestStack::new().await;
    let mut tx = stack.db.begin().await.unwrap();
    sqlx::query("set local role b2b_app")
        .execute(&mut *tx)
        .await
        .unwrap();
    let error = sqlx::query("alter table events disable trigger user")
        .execute(&mut *tx)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("must be owner"), "{error}");
}

#[tokio::test]
async fn each_event_chains_to_the_previous_hash_of_its_stream() {
    let stack = TestStack::new().await;
    let tenant = stack.create_tenant("chain").await;
    let server = stack.spawn(&["command-api"]).await;
    let api = Api::new(&server);
    let token = api.login(&tenant).await;
    let id = Uuid::new_v4();
    api.ok(&token, id, open_account("Vandelay")).await;
    api.ok(
        &token,
        id,
        serde_json::json!({"type": "ChangeTier", "tier": "Standard"}),
    )
    .await;
    let broken: i64 = sqlx::query_scalar(
        "select count(*) from events e left join events p \
           on p.aggregate_type = e.aggregate_type and p.aggregate_id = e.aggregate_id \
          and p.sequence = e.sequence - 1 \
         where e.chain_version <> 2 or e.hash is distinct from event_hash(p.hash, e)",
    )
    .fetch_one(&stack.db)
    .await
    .unwrap();
    assert_eq!(broken, 0);
    let (distinct, all): (i64, i64) =
        sqlx::query_as("select count(distinct hash), count(*) from events")
            .fetch_one(&stack.db)
            .await
            .unwrap();
    assert_eq!(distinct, all);
}

/// The relay, projectors and GraphQL reads take lists of ids (`= any($1)`): they plan each
/// statement for its own parameters, so a generic plan made while a table was small (a
/// sequential scan) is not kept as the table grows. Commands keep Postgres's cached plans.
#[tokio::test]
async fn workers_and_graphql_reads_plan_each_statement_while_commands_keep_cached_plans() {
    use event_store::db::{self, Plans};
    let stack = TestStack::new().await;
    let tenant = stack.create_tenant("plans").await;
    let show = "show plan_cache_mode";
    let worker = db::connect_with_plans(&stack.database.worker_url, 1, Plans::PerExecution)
        .await
        .unwrap();
    let worker_mode: String = sqlx::query_scalar(show).fetch_one(&worker).await.unwrap();
    assert_eq!(worker_mode, "force_custom_plan");

    let api = db::connect(&stack.database.api_url, 1).await.unwrap();
    let mut read = db::begin_read_only_for_tenant_planned(&api, tenant.id)
        .await
        .unwrap();
    let read_mode: String = sqlx::query_scalar(show)
        .fetch_one(&mut *read)
        .await
        .unwrap();
    assert_eq!(read_mode, "force_custom_plan");
    read.rollback().await.unwrap();
    // Transaction-local: the connection's next user, a command, plans as Postgres chooses.
    let command_mode: String = sqlx::query_scalar(show).fetch_one(&api).await.unwrap();
    assert_eq!(command_mode, "auto");
}
