-- Tenant policy changes are history too. `b2b tenant set-policy` used to overwrite a row, so an
-- auditor could not see when approval thresholds changed or who changed them. Each change is now
-- a `TenantPolicySet` event in the tenant's own stream (aggregate type `Tenant`, named by the
-- tenant's id), hashed, signed in checkpoints and exported like every other event, and
-- `tenant_policies` is that stream's projection: this trigger keeps it in step inside the
-- append's own transaction (as 0007 does for `user_credentials`), so the very next command
-- decides on the new policy and the caches hear of it from 0013's trigger.

create function tenant_policies_from_events() returns trigger
language plpgsql security definer set search_path = public as $$
begin
    if new.aggregate_id <> new.tenant_id::text then
        raise exception 'the Tenant stream % is not named by its tenant %',
            new.aggregate_id, new.tenant_id;
    end if;
    insert into tenant_policies (tenant_id, policy, updated_at)
    values (new.tenant_id, (new.payload -> 'TenantPolicySet' -> 'policy')::jsonb,
            new.recorded_at)
    on conflict (tenant_id) do update
        set policy = excluded.policy, updated_at = excluded.updated_at;
    return null;
end
$$;

-- Every policy set so far starts its tenant's stream, so the stream alone tells the policy in
-- force. When it was set before is not known: the event's `client` says it was carried over.
insert into events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload,
                    metadata, hash)
select 'Tenant', p.tenant_id::text, 1, 'TenantPolicySet', '1.0',
       json_build_object('TenantPolicySet', json_build_object('policy', p.policy)),
       json_build_object('tenant_id', p.tenant_id::text,
                         'system_process', 'migration-0029',
                         'client', 'b2b migrate: the policy in force when history began',
                         'correlation_id', p.id, 'causation_id', p.id, 'request_id', p.id,
                         'recorded_at',
                         to_char(now() at time zone 'utc', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')),
       ''::bytea
  -- A volatile call in the select list runs once per row: an id of its own for each event.
  from (select tenant_id, policy, gen_random_uuid()::text as id from tenant_policies) p
 order by p.tenant_id;

create trigger events_tenant_policies after insert on events
    for each row when (new.aggregate_type = 'Tenant' and new.event_type = 'TenantPolicySet')
    execute function tenant_policies_from_events();
