-- One transaction per command, and nothing per event on the append path but the event itself.
--
-- 1. The relay reads `events` itself from its own checkpoint instead of an outbox row per
--    event, and nothing NOTIFYs per event: a NOTIFY takes a database-wide lock at commit and
--    serialised every append. Leadership is a lease in the same row, so a hung relay loses it.
-- 2. `Idempotency-Key` receipts are written in the command's own transaction, so a receipt
--    exists if and only if its command committed; claims without a reply are gone.
-- 3. In-process caches (sessions and roles, tenant policies) are told of changes on the channel
--    `b2b_invalidate`. These writes are rare (sign-out, role and password changes, policies),
--    so their NOTIFY costs the command path nothing.

create table relay_state (
    singleton       boolean     primary key default true check (singleton),
    -- Every event at or below this position is published (or never existed).
    global_position bigint      not null,
    leader          uuid,
    lease_until     timestamptz not null default '-infinity'
);

-- Continue where the outbox stood: below its oldest unpublished event, or above every stored
-- event when it is empty.
insert into relay_state (global_position)
select coalesce((select min(global_position) - 1 from outbox),
                (select max(global_position) from events), 0);

-- The relay tells a rolled-back position from one still to commit by the transactions running
-- when it saw the gap, which holds only if a transaction has its id before it takes a position:
-- so the trigger takes both, in that order, instead of the column defaults.
alter table events alter column global_position drop default;

create or replace function events_before_insert() returns trigger language plpgsql as $$
declare
    previous bytea;
begin
    new.tx_id := pg_current_xact_id();
    new.global_position := nextval('events_global_position_seq');
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

drop trigger events_after_insert on events;
drop function events_to_outbox();
drop table outbox;

grant select, update on relay_state to b2b_app;

-- Every append maintains every index of `events`; read-your-writes now finds a stream's type
-- through the primary key, so the index on the id alone goes.
drop index events_aggregate_id;

delete from idempotency_keys where response is null;

-- tg_argv: the topic, and the column naming what changed.
create function notify_invalidation() returns trigger language plpgsql as $$
begin
    perform pg_notify('b2b_invalidate', tg_argv[0] || ':' || (to_jsonb(new) ->> tg_argv[1]));
    return null;
end
$$;

create trigger sessions_invalidate after update on sessions
    for each row when (old.revoked_at is distinct from new.revoked_at)
    execute function notify_invalidation('session', 'id');
create trigger user_credentials_invalidate after update on user_credentials
    for each row when (old.roles is distinct from new.roles
                       or old.account_id is distinct from new.account_id
                       or old.active is distinct from new.active
                       or old.email is distinct from new.email
                       or old.password_hash is distinct from new.password_hash)
    execute function notify_invalidation('user', 'user_id');
create trigger tenant_policies_invalidate after insert or update on tenant_policies
    for each row execute function notify_invalidation('policy', 'tenant_id');
