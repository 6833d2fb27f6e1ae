-- API keys for machine clients (auth::api_keys). A key is a credential like a session: it lives
-- in this table, not in the event log, and its row is its history. A row is inserted once, with
-- who created it and what it may do, and later only revoked (once, by whom, when) or stamped with
-- its last use; rows are never deleted, and b2b_app may update no other column. Only the
-- secret's SHA-256 is stored: the secret is 32 random bytes, so a fast hash is enough and the
-- secret cannot be recovered from it.
create table api_keys (
    id           uuid        primary key,
    tenant_id    uuid        not null references tenants (id),
    name         text        not null,
    roles        text[]      not null,
    account_id   uuid,
    secret_hash  bytea       not null,
    expires_at   timestamptz not null,
    created_at   timestamptz not null default now(),
    created_by   uuid        not null,
    revoked_at   timestamptz,
    revoked_by   uuid,
    last_used_at timestamptz,
    check ((revoked_at is null) = (revoked_by is null))
);
create index api_keys_tenant_created on api_keys (tenant_id, created_at, id);

alter table api_keys enable row level security;
create policy tenant_isolation on api_keys to b2b_app
    using (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
    with check (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);

grant select, insert on api_keys to b2b_app;
grant update (revoked_at, revoked_by, last_used_at) on api_keys to b2b_app;

-- A revocation reaches every replica's admission cache (`api_key:<id>`, as sessions do).
create trigger api_keys_invalidate after update on api_keys
    for each row when (old.revoked_at is distinct from new.revoked_at)
    execute function notify_invalidation('api_key', 'id');

-- Admission, before any tenant is known: the live key a presented secret names (the secret
-- starts with the key's id), with its tenant and, for a Partner key, its account's API quota.
-- The caller compares the secret's hash with `secret_hash` itself, in constant time.
create function live_api_key(key_id uuid)
returns table (id uuid, tenant_id uuid, tenant_slug text, roles text[], account_id uuid,
               expires_at timestamptz, secret_hash bytea, account_quota integer)
language sql stable security definer set search_path = public, pg_temp as $$
    select k.id, k.tenant_id, t.slug, k.roles, k.account_id, k.expires_at, k.secret_hash,
           case when 'Partner' = any(k.roles)
                then account_api_quota(k.tenant_id, k.account_id) end
      from api_keys k join tenants t on t.id = k.tenant_id
     where k.id = key_id and k.revoked_at is null and k.expires_at > now()
$$;

-- Stamps a key's last use, as its tenant (row-level security applies; the `set` clause undoes
-- the setting on return). Admission calls it at most once a minute per key and replica.
create function touch_api_key(tenant uuid, key_id uuid) returns void
language plpgsql set app.tenant_id = '' as $$
begin
    perform set_config('app.tenant_id', tenant::text, true);
    update api_keys k set last_used_at = now() where k.id = key_id;
end
$$;

revoke all on function live_api_key(uuid), touch_api_key(uuid, uuid) from public;
grant execute on function live_api_key(uuid), touch_api_key(uuid, uuid) to b2b_app;
