-- Durable timers: a command to run against one aggregate once its time comes. Rows are written
-- by the timer-scheduling process manager in the same transaction as its checkpoint, and run by
-- the timer worker (`projections::timers`). A schedule therefore survives restarts and is
-- written once however often the scheduling event is delivered.
create table scheduled_commands (
    -- UUID v5 of the scheduling event's message id and the purpose: a redelivered event
    -- inserts the same id, and `on conflict do nothing` keeps the first.
    id             uuid primary key,
    tenant_id      uuid        not null,
    -- When the command is meant to run (the business time: valid-until, SLA due, start date).
    due_at         timestamptz not null,
    -- When the worker may next try: `due_at` at first, later after a back-off.
    not_before     timestamptz not null,
    aggregate_type text        not null,
    aggregate_id   text        not null,
    -- The JSON form of `projections::timers::TimerAction`.
    command        jsonb       not null,
    -- Copied into the metadata of the events the command produces.
    correlation_id uuid        not null,
    causation_id   uuid        not null,
    attempts       integer     not null default 0,
    done_at        timestamptz,
    -- The last failure, or why the command no longer applied.
    last_error     text,
    created_at     timestamptz not null default now()
);

-- What the worker polls: open rows in the order they may run.
create index scheduled_commands_open on scheduled_commands (not_before) where done_at is null;
create index scheduled_commands_aggregate on scheduled_commands (aggregate_type, aggregate_id);

grant select, insert, update on scheduled_commands to b2b_app;

-- FOR TESTS ONLY: the offset the adjustable clock (`B2B_CLOCK=adjustable`, refused unless
-- `APP_ENV` is local or test) adds to the database's time. One row; tests move it with
-- `update test_clock set offset_by = offset_by + interval '2 days'`.
create table test_clock (
    singleton boolean  primary key default true check (singleton),
    offset_by interval not null default interval '0'
);

insert into test_clock default values;

grant select on test_clock to b2b_app;
