-- postgres-es's events table. The columns after `metadata` are ours: postgres-es does not name
-- them on insert, so defaults and the trigger below fill them and its inserts keep working.
create table events (
    aggregate_type  text                         not null,
    aggregate_id    text                         not null,
    sequence        bigint check (sequence >= 0) not null,
    event_type      text                         not null,
    event_version   text                         not null,
    payload         json                         not null,
    metadata        json                         not null,
    global_position bigserial                    not null unique,
    -- Commit order: a reader takes only events whose transaction is older than every
    -- transaction still running (pg_snapshot_xmin), so a late commit is never skipped.
    tx_id           xid8                         not null default pg_current_xact_id(),
    recorded_at     timestamptz                  not null default now(),
    tenant_id       uuid                         not null,
    -- sha256 over the previous event's hash in the same stream and this event's content.
    hash            bytea                        not null,
    primary key (aggregate_type, aggregate_id, sequence)
);

create index events_commit_order on events (tx_id, global_position);
create index events_tenant_time on events (tenant_id, recorded_at);
-- Read-your-writes looks a stream up by id alone.
create index events_aggregate_id on events (aggregate_id);

-- The exact bytes a hash covers. json_build_array keeps the payload's text as stored, so the
-- auditor's recomputation reads the same bytes.
create function event_hash(
    previous bytea, aggregate_type text, aggregate_id text, sequence bigint,
    event_type text, event_version text, payload json, metadata json
) returns bytea language sql immutable as $$
    select sha256(coalesce(previous, ''::bytea) || convert_to(
        json_build_array(aggregate_type, aggregate_id, sequence, event_type, event_version,
                         payload, metadata)::text, 'UTF8'))
$$;

create function events_before_insert() returns trigger language plpgsql as $$
declare
    previous bytea;
begin
    new.tenant_id := nullif(new.metadata ->> 'tenant_id', '')::uuid;
    if new.tenant_id is null then
        raise exception 'event metadata must carry tenant_id';
    end if;
    if new.sequence > 1 then
        select e.hash into previous from events e
         where e.aggregate_type = new.aggregate_type
           and e.aggregate_id = new.aggregate_id
           and e.sequence = new.sequence - 1;
        if previous is null then
            raise exception 'event % of %/% has no predecessor',
                new.sequence, new.aggregate_type, new.aggregate_id;
        end if;
    end if;
    new.hash := event_hash(previous, new.aggregate_type, new.aggregate_id, new.sequence,
                           new.event_type, new.event_version, new.payload, new.metadata);
    return new;
end
$$;

create trigger events_before_insert before insert on events
    for each row execute function events_before_insert();

-- Stored events are facts: nothing may change or remove them.
create function events_are_immutable() returns trigger language plpgsql as $$
begin
    raise exception 'events are immutable: % refused', tg_op
        using errcode = 'insufficient_privilege';
end
$$;

create trigger events_no_update_delete before update or delete on events
    for each row execute function events_are_immutable();
create trigger events_no_truncate before truncate on events
    for each statement execute function events_are_immutable();

-- The outbox is written in the same transaction as the events, so an event is published if and
-- only if it was committed. The relay deletes rows once RabbitMQ has confirmed them.
create table outbox (
    id              bigserial primary key,
    global_position bigint      not null,
    aggregate_type  text        not null,
    aggregate_id    text        not null,
    sequence        bigint      not null,
    event_type      text        not null,
    event_version   text        not null,
    payload         json        not null,
    metadata        json        not null,
    tenant_id       uuid        not null,
    recorded_at     timestamptz not null
);

create function events_to_outbox() returns trigger language plpgsql as $$
begin
    insert into outbox (global_position, aggregate_type, aggregate_id, sequence, event_type,
                        event_version, payload, metadata, tenant_id, recorded_at)
    values (new.global_position, new.aggregate_type, new.aggregate_id, new.sequence,
            new.event_type, new.event_version, new.payload, new.metadata, new.tenant_id,
            new.recorded_at);
    perform pg_notify('outbox', '');
    return null;
end
$$;

create trigger events_after_insert after insert on events
    for each row execute function events_to_outbox();

-- postgres-es's snapshot table: unused (event-store mode) but its code names it.
create table snapshots (
    aggregate_type   text                                 not null,
    aggregate_id     text                                 not null,
    last_sequence    bigint check (last_sequence >= 0)    not null,
    current_snapshot bigint check (current_snapshot >= 0) not null,
    payload          json                                 not null,
    primary key (aggregate_type, aggregate_id, last_sequence)
);

grant select, insert on events, outbox to b2b_app;
-- select ... for update needs update privilege.
grant update, delete on outbox to b2b_app;
grant usage on sequence events_global_position_seq, outbox_id_seq to b2b_app;
