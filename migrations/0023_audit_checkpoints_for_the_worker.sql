-- Signed checkpoints (0022) are the checkpoint worker's and the owner's commands' alone: the
-- APIs never read or write them, so `b2b_app` (and with it `b2b_api`) loses its rights, and the
-- worker's login sees and writes only the tenant its transaction names, like every other
-- tenant table (0021). The owner (`b2b audit checkpoint|verify`) is not subject to the policy.
revoke all on audit_checkpoints, audit_checkpoint_heads from b2b_app;
grant select, insert on audit_checkpoints, audit_checkpoint_heads to b2b_worker;

do $$
declare
    t text;
    tenant constant text := 'nullif(current_setting(''app.tenant_id'', true), '''')::uuid';
begin
    foreach t in array array['audit_checkpoints', 'audit_checkpoint_heads'] loop
        execute format('alter table %I enable row level security', t);
        execute format('create policy tenant_isolation on %I to b2b_worker '
                       'using (tenant_id = %s) with check (tenant_id = %s)', t, tenant, tenant);
    end loop;
end
$$;
