-- Services log in as roles that own nothing and are not superusers, and every tenant table they
-- read has row-level security on `app.tenant_id` (ARCHITECTURE.md, "Database roles").
--
--   b2b_api    LOGIN, member of b2b_app: the command and query APIs (DATABASE_URL).
--   b2b_worker LOGIN, member of b2b_app: the relay and the projector process (read models,
--              process managers, timers; WORKER_DATABASE_URL). Besides b2b_app's rights it
--              reads every tenant's events (the relay publishes them all, in commit order) and
--              every tenant's due timers, and writes what only the workers write.
--
-- Neither may become the schema owner: `reset role` leaves them what they logged in as. The
-- owner (DATABASE_OWNER_URL) runs migrations and the operator commands. Logins are cluster-wide
-- and get their passwords from whoever runs the cluster (deploy/local/stack.sh locally; an
-- operator elsewhere: `alter role b2b_api password '…'`); another migration may create them
-- first when several databases migrate at once, hence the tolerant blocks, as in 0001.
do $$
begin
    begin
        create role b2b_api login nosuperuser nocreatedb nocreaterole nobypassrls;
    exception when others then null;
    end;
    begin
        create role b2b_worker login nosuperuser nocreatedb nocreaterole nobypassrls;
    exception when others then null;
    end;
    begin
        if not pg_has_role('b2b_api', 'b2b_app', 'member') then
            grant b2b_app to b2b_api;
        end if;
        if not pg_has_role('b2b_worker', 'b2b_app', 'member') then
            grant b2b_app to b2b_worker;
        end if;
    exception when others then null;
    end;
end
$$;

-- What only the workers use: the relay's checkpoint and lease, the process managers' id key,
-- the timers, and the writes of the read models and their checkpoints. The APIs only read
-- the read models and checkpoints (X-Await-Version).
revoke all on relay_state, process_id_key, scheduled_commands from b2b_app;
grant select, update on relay_state to b2b_worker;
grant select on process_id_key to b2b_worker;
grant select, insert, update on scheduled_commands to b2b_worker;
revoke insert, update, delete on projection_checkpoints from b2b_app;
grant insert, update on projection_checkpoints to b2b_worker;
revoke insert, update, delete on
    read.accounts, read.users, read.quotes, read.quote_lines, read.approvals,
    read.approval_levels, read.contracts, read.contract_versions
    from b2b_app;
grant insert, update, delete on
    read.accounts, read.users, read.quotes, read.quote_lines, read.approvals,
    read.approval_levels, read.contracts, read.contract_versions
    to b2b_worker;

-- Sessions and refresh tokens carry their tenant, so that they can be isolated like the rest.
alter table sessions add column tenant_id uuid;
update sessions s set tenant_id = c.tenant_id from user_credentials c where c.user_id = s.user_id;
alter table sessions alter column tenant_id set not null;
alter table refresh_tokens add column tenant_id uuid;
update refresh_tokens t set tenant_id = s.tenant_id from sessions s where s.id = t.session_id;
alter table refresh_tokens alter column tenant_id set not null;

-- Every tenant table b2b_app reads shows it only the rows of the tenant its transaction names,
-- and it may write only rows of that tenant; without a tenant it sees nothing.
do $$
declare
    t text;
    tenant constant text := 'nullif(current_setting(''app.tenant_id'', true), '''')::uuid';
begin
    foreach t in array array['events', 'user_credentials', 'sessions', 'refresh_tokens',
                             'tenant_policies', 'idempotency_keys', 'sign_in_failures'] loop
        execute format('alter table %I enable row level security', t);
        execute format('create policy tenant_isolation on %I to b2b_app '
                       'using (tenant_id = %s) with check (tenant_id = %s)', t, tenant, tenant);
    end loop;
    alter table tenants enable row level security;
    execute format('create policy own_tenant on tenants for select to b2b_app using (id = %s)',
                   tenant);
end
$$;

-- Under row-level security a filter calling a function that is not leakproof (`->>`) may no
-- longer be an index condition, so the audit log's filter by user would read the tenant's whole
-- history. It filters on this column instead (text equality is leakproof). Adding it rewrites
-- `events` once; the hashes do not cover it.
alter table events add column user_id text generated always as (metadata ->> 'user_id') stored;
drop index events_tenant_user_commit_order;
create index events_tenant_user_commit_order
    on events (tenant_id, user_id, tx_id, global_position);

-- The workers' cross-tenant reads, and nothing more: every event (the relay, in commit order;
-- the audit checkpoint worker, tenant by tenant, which lists the tenants to sign) and every
-- timer (the timer worker polls them all; the scheduling process manager writes them).
create policy all_tenants on events for select to b2b_worker using (true);
create policy all_tenants on tenants for select to b2b_worker using (true);
alter table scheduled_commands enable row level security;
create policy all_tenants on scheduled_commands to b2b_worker using (true) with check (true);

-- Writes the sign-in path makes before any tenant is known go through the functions below.
revoke insert, update, delete on sign_in_failures from b2b_app;

-- Reads on the command path, one round trip each: the function names the tenant for its one
-- query (the `set` clause undoes that when it returns), and row-level security applies.

-- A stream's events after `after_sequence`, as `Streams::refresh` folds them.
create function stream_events(
    tenant uuid, stream_type text, stream_id text, after_sequence bigint
)
returns table (sequence bigint, tenant_id uuid, payload text)
language plpgsql set app.tenant_id = '' as $$
begin
    perform set_config('app.tenant_id', tenant::text, true);
    return query
        select e.sequence, e.tenant_id, e.payload::text from events e
         where e.aggregate_type = stream_type and e.aggregate_id = stream_id
           and e.sequence > after_sequence
         order by e.sequence;
end
$$;

-- How long an Idempotency-Key receipt is kept: the one definition.
create function idempotency_cutoff() returns timestamptz
language sql stable as $$ select now() - interval '24 hours' $$;

-- The receipt of an Idempotency-Key, removing it first if it has expired.
create function idempotency_receipt(tenant uuid, requester uuid, receipt_key text)
returns table (request_hash bytea, response jsonb)
language plpgsql set app.tenant_id = '' as $$
begin
    perform set_config('app.tenant_id', tenant::text, true);
    delete from idempotency_keys k
     where k.tenant_id = tenant and k.user_id = requester and k.key = receipt_key
       and k.created_at < idempotency_cutoff();
    return query
        select k.request_hash, k.response from idempotency_keys k
         where k.tenant_id = tenant and k.user_id = requester and k.key = receipt_key;
end
$$;

-- A request's session as stored now (admission): who its user is, if it is still live.
create function live_session(tenant uuid, session_id uuid, user_id uuid)
returns table (email text, roles text[], account_id uuid, expires_at timestamptz,
               account_quota integer)
language plpgsql set app.tenant_id = '' as $$
begin
    perform set_config('app.tenant_id', tenant::text, true);
    return query
        select c.email, c.roles, c.account_id, s.expires_at,
               case when 'Partner' = any(c.roles)
                    then account_api_quota(c.tenant_id, c.account_id) end
          from sessions s join user_credentials c on c.user_id = s.user_id
         where s.id = live_session.session_id and s.user_id = live_session.user_id
           and c.tenant_id = tenant
           and s.revoked_at is null and s.expires_at > now() and c.active;
end
$$;

-- Before a tenant is known: narrow lookups as the owner (security definer), each answering
-- only what its caller already names.

-- Sign-in: the active user with this e-mail in the tenant with this slug.
create function sign_in_credentials(tenant_slug text, login_email text)
returns table (tenant_id uuid, user_id uuid, password_hash text)
language sql stable security definer set search_path = public, pg_temp as $$
    select c.tenant_id, c.user_id, c.password_hash
      from user_credentials c join tenants t on t.id = c.tenant_id
     where t.slug = tenant_slug and c.email = login_email and c.active
$$;

-- Sign-in lockout (auth::lockout): counts an attempt of a guessing source and answers how long
-- it stays locked, if it is, and how many attempts the e-mail saw from every source. A pair's
-- count runs while its period runs and no lock of it has expired; otherwise it starts afresh.
create function count_sign_in_attempt(
    tenant_slug text, login_email text, guessing_source text,
    max_failures integer, lock_seconds double precision
) returns table (locked_for integer, on_this_email bigint)
language sql volatile security definer set search_path = public, pg_temp as $$
    with period as (select lock_seconds * interval '1 second' as length),
    counted as (
        insert into sign_in_failures as f
            (tenant_slug, email, source, tenant_id, failures, window_started_at)
        values (tenant_slug, login_email, guessing_source,
                (select id from tenants where slug = tenant_slug), 1, now())
        on conflict (tenant_slug, email, source) do update set
            failures = case when f.window_started_at > now() - (select length from period)
                                 and (f.locked_until is null or f.locked_until > now())
                            then f.failures + 1 else 1 end,
            window_started_at = case when f.window_started_at > now() - (select length from period)
                                          and (f.locked_until is null or f.locked_until > now())
                                     then f.window_started_at else now() end,
            locked_until = case
                when f.locked_until > now() then f.locked_until
                when f.window_started_at > now() - (select length from period)
                     and (f.locked_until is null or f.locked_until > now())
                     and f.failures + 1 > max_failures
                then now() + (select length from period)
                end
        returning locked_until, failures)
    select case when c.locked_until > now()
                then greatest(1, ceil(extract(epoch from c.locked_until - now())))::integer end,
           c.failures + (select coalesce(sum(o.failures), 0) from sign_in_failures o
                          where o.tenant_slug = count_sign_in_attempt.tenant_slug
                            and o.email = login_email and o.source <> guessing_source
                            and o.window_started_at > now() - (select length from period))::bigint
      from counted c
$$;

-- A success proves the source knows the password: its count starts again.
create function clear_sign_in_failures(tenant_slug text, login_email text, guessing_source text)
returns void
language sql volatile security definer set search_path = public, pg_temp as $$
    delete from sign_in_failures f
     where f.tenant_slug = clear_sign_in_failures.tenant_slug and f.email = login_email
       and f.source = guessing_source
$$;

-- Refresh: the session a refresh token belongs to, token and session locked until the
-- caller's transaction ends (two refreshes with one token take turns).
create function refresh_token_session(token bytea)
returns table (session_id uuid, user_id uuid, tenant_id uuid, already_used boolean,
               live boolean)
language sql volatile security definer set search_path = public, pg_temp as $$
    select s.id, s.user_id, s.tenant_id, t.used_at is not null,
           s.revoked_at is null and s.expires_at > now()
      from refresh_tokens t join sessions s on s.id = t.session_id
     where t.token_hash = token
       for update of t, s
$$;

-- Deployment-wide housekeeping and gauges, across tenants by nature.

-- Removes up to `batch` receipts past their retention; answers how many.
create function sweep_idempotency_receipts(batch bigint) returns bigint
language sql volatile security definer set search_path = public, pg_temp as $$
    with removed as (
        delete from idempotency_keys where ctid = any(array(
            select ctid from idempotency_keys where created_at < idempotency_cutoff()
             limit batch))
        returning 1)
    select count(*) from removed
$$;

-- The last stored position, and the events above the relay's checkpoint (for /metrics and
-- status), from index lookups.
create function event_positions(out stored_position bigint, out unpublished bigint)
language sql stable security definer set search_path = public, pg_temp as $$
    select coalesce((select max(global_position) from events), 0),
           (select count(*) from events e, relay_state r
             where e.global_position > r.global_position)
$$;

revoke all on function
    stream_events(uuid, text, text, bigint), idempotency_cutoff(),
    idempotency_receipt(uuid, uuid, text), live_session(uuid, uuid, uuid),
    sign_in_credentials(text, text),
    count_sign_in_attempt(text, text, text, integer, double precision),
    clear_sign_in_failures(text, text, text), refresh_token_session(bytea),
    sweep_idempotency_receipts(bigint), event_positions()
    from public;
grant execute on function
    stream_events(uuid, text, text, bigint), idempotency_cutoff(),
    idempotency_receipt(uuid, uuid, text), live_session(uuid, uuid, uuid),
    sign_in_credentials(text, text),
    count_sign_in_attempt(text, text, text, integer, double precision),
    clear_sign_in_failures(text, text, text), refresh_token_session(bytea),
    sweep_idempotency_receipts(bigint), event_positions()
    to b2b_app;
