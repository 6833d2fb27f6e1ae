-- Evidence an auditor can rely on: a hash that covers when and where an event was recorded, and
-- signed checkpoints of every tenant's history.
--
-- 1. Chain version 2. Version 1 (`event_hash` over json_build_array) left out the tenant, the
--    global position and `recorded_at`, so a backdated or reordered event still verified. Every
--    event from now on is hashed as version 2; the events stored before keep version 1 and
--    verify as they were hashed. A stream's chain runs on across the change: its first version-2
--    event chains to its last version-1 hash. The version is forced by the insert trigger, so no
--    writer can choose the weaker one.
-- 2. Checkpoints. A worker signs, with an Ed25519 key kept outside the database, each tenant's
--    stream heads (sequence and hash of every stream's last event) and the last global position
--    they cover. A head row is stored only when it changed since the tenant's previous
--    checkpoint; the heads of checkpoint N are each stream's latest row at or below N, and the
--    signature covers a hash of all of them, so a changed or removed row is found too.

alter table events add column chain_version smallint not null default 1;
alter table events alter column chain_version set default 2;

-- Version 2's exact bytes (the Rust verifier, `event_store::audit::chain`, computes the same):
-- sha256 over the previous hash, the version byte 2, the tenant (16 bytes), the sha256 of the
-- aggregate type and of the id, the sequence, the global position, `recorded_at` in
-- microseconds since the Unix epoch (8-byte big-endian integers), the sha256 of the event type,
-- of its version, and of the payload and the metadata as stored with surrounding JSON
-- whitespace trimmed (so an export's JSON values reproduce them exactly). Text goes in as its
-- own digest: fixed widths need no separators, and each argument is used once, so Postgres
-- inlines the function into the trigger's one expression.
create function event_hash_v2(
    previous bytea, tenant_id uuid, aggregate_type text, aggregate_id text, sequence bigint,
    global_position bigint, recorded_at timestamptz, event_type text, event_version text,
    payload json, metadata json
) returns bytea language sql immutable as $$
    select sha256(coalesce(previous, ''::bytea) || '\x02'::bytea || uuid_send(tenant_id)
        || sha256(convert_to(aggregate_type, 'UTF8')) || sha256(convert_to(aggregate_id, 'UTF8'))
        || int8send(sequence) || int8send(global_position)
        || int8send((extract(epoch from recorded_at) * 1000000)::bigint)
        || sha256(convert_to(event_type, 'UTF8')) || sha256(convert_to(event_version, 'UTF8'))
        || sha256(convert_to(btrim(payload::text, e' \t\n\r'), 'UTF8'))
        || sha256(convert_to(btrim(metadata::text, e' \t\n\r'), 'UTF8')))
$$;

-- An event's hash under its own chain version, for checks in SQL (`event_hash(p.hash, e)`). An
-- unknown version hashes to null, which matches no stored hash.
create function event_hash(previous bytea, e events) returns bytea language sql immutable as $$
    select case e.chain_version
        when 1 then event_hash(previous, e.aggregate_type, e.aggregate_id, e.sequence,
                               e.event_type, e.event_version, e.payload, e.metadata)
        when 2 then event_hash_v2(previous, e.tenant_id, e.aggregate_type, e.aggregate_id,
                                  e.sequence, e.global_position, e.recorded_at, e.event_type,
                                  e.event_version, e.payload, e.metadata)
    end
$$;

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
    new.chain_version := 2;
    new.hash := event_hash_v2(previous, new.tenant_id, new.aggregate_type, new.aggregate_id,
                              new.sequence, new.global_position, new.recorded_at,
                              new.event_type, new.event_version, new.payload, new.metadata);
    return new;
end
$$;

create table audit_checkpoints (
    tenant_id            uuid        not null references tenants (id),
    -- 1, 2, 3… per tenant; each extends the one before.
    number               bigint      not null check (number > 0),
    last_global_position bigint      not null,
    streams              bigint      not null,
    events               bigint      not null,
    heads_root           bytea       not null,
    made_at              timestamptz not null,
    -- The events it covers are those committed in this snapshot: the next checkpoint reads
    -- only the tenant's events this snapshot did not see. Not signed: it only saves a scan.
    covered_snapshot     pg_snapshot not null,
    -- The signer's key, for information: verifiers check against a key they trust.
    public_key           bytea       not null,
    signature            bytea       not null,
    primary key (tenant_id, number)
);

create table audit_checkpoint_heads (
    tenant_id         uuid   not null,
    aggregate_type    text   not null,
    aggregate_id      text   not null,
    checkpoint_number bigint not null,
    sequence          bigint not null,
    hash              bytea  not null,
    primary key (tenant_id, aggregate_type, aggregate_id, checkpoint_number),
    foreign key (tenant_id, checkpoint_number) references audit_checkpoints (tenant_id, number)
);

-- Like events, checkpoints are never changed or removed once written.
create function audit_checkpoints_are_immutable() returns trigger language plpgsql as $$
begin
    raise exception 'audit checkpoints are immutable: % refused', tg_op
        using errcode = 'insufficient_privilege';
end
$$;

create trigger audit_checkpoints_no_update_delete before update or delete on audit_checkpoints
    for each row execute function audit_checkpoints_are_immutable();
create trigger audit_checkpoints_no_truncate before truncate on audit_checkpoints
    for each statement execute function audit_checkpoints_are_immutable();
create trigger audit_checkpoint_heads_no_update_delete
    before update or delete on audit_checkpoint_heads
    for each row execute function audit_checkpoints_are_immutable();
create trigger audit_checkpoint_heads_no_truncate before truncate on audit_checkpoint_heads
    for each statement execute function audit_checkpoints_are_immutable();

grant select, insert on audit_checkpoints, audit_checkpoint_heads to b2b_app;
