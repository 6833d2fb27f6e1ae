-- A tenant always keeps at least one active TenantAdmin. The User aggregate checks it before
-- deciding, but two admins demoting or deactivating each other at once both see the other one
-- still active. So the credentials row (kept in step with the User streams inside the append's
-- transaction, 0007) checks it again, serialised per tenant: the second transaction waits for
-- the first to commit, then sees its change and is refused.
create function tenant_keeps_an_admin() returns trigger
language plpgsql security definer set search_path = public as $$
begin
    if 'TenantAdmin' = any(old.roles) and old.active then
        perform pg_advisory_xact_lock(hashtext('tenant-admins'), hashtext(new.tenant_id::text));
        if not exists (select 1 from user_credentials c
                        where c.tenant_id = new.tenant_id and c.active
                          and 'TenantAdmin' = any(c.roles)) then
            raise exception 'the tenant must keep at least one active TenantAdmin'
                using errcode = 'check_violation', constraint = 'last_tenant_admin';
        end if;
    end if;
    return null;
end
$$;

create trigger user_credentials_keep_an_admin after update on user_credentials
    for each row when (old.roles is distinct from new.roles or old.active is distinct from new.active)
    execute function tenant_keeps_an_admin();
