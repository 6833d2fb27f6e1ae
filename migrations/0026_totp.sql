-- Two-factor sign-in with TOTP (RFC 6238; auth::totp). Like the password hash, none of this
-- enters an event: these are credentials, kept per user under row-level security.

-- A user's TOTP secret: enrolled (shown once as an otpauth URI), then confirmed by a first code.
-- The secret must be read back to check codes, so it is stored as is; only this table's tenant
-- sees it, and it never leaves the server again. `last_step` is the time step of the last code
-- accepted: a code is accepted only for a later step, so none is used twice.
create table user_totp (
    user_id      uuid        primary key,
    tenant_id    uuid        not null references tenants (id),
    secret       bytea       not null,
    enrolled_at  timestamptz not null default now(),
    confirmed_at timestamptz,
    last_step    bigint      not null default 0
);

-- Single-use recovery codes, stored as SHA-256 (each holds 50 random bits and is tried only
-- under the sign-in lockout). Made anew, replacing the old ones, at each confirmation.
create table totp_recovery_codes (
    user_id   uuid        not null references user_totp (user_id) on delete cascade,
    tenant_id uuid        not null references tenants (id),
    code_hash bytea       not null,
    used_at   timestamptz,
    primary key (user_id, code_hash)
);

-- The step between a correct password and a code: `mfa_token` names it (only its SHA-256 is
-- stored), it lasts a few minutes and completes one sign-in. It keeps the tenant slug and e-mail
-- as typed, so wrong codes count toward the same lockout source as wrong passwords. A user's
-- spent and expired challenges are deleted when their next one opens.
create table mfa_challenges (
    token_hash  bytea       primary key,
    tenant_id   uuid        not null references tenants (id),
    user_id     uuid        not null,
    tenant_slug text        not null,
    email       text        not null,
    enroll      boolean     not null,
    expires_at  timestamptz not null,
    used_at     timestamptz
);
create index mfa_challenges_user on mfa_challenges (user_id);

do $$
declare
    t text;
    tenant constant text := 'nullif(current_setting(''app.tenant_id'', true), '''')::uuid';
begin
    foreach t in array array['user_totp', 'totp_recovery_codes', 'mfa_challenges'] loop
        execute format('alter table %I enable row level security', t);
        execute format('create policy tenant_isolation on %I to b2b_app '
                       'using (tenant_id = %s) with check (tenant_id = %s)', t, tenant, tenant);
    end loop;
end
$$;

grant select, insert, update, delete on user_totp, totp_recovery_codes, mfa_challenges to b2b_app;

-- The second step, before a tenant is known: the challenge an `mfa_token` names (the one row
-- whose hash the caller presents), locked until the caller's transaction ends so two attempts
-- with one token take turns. The caller then acts for its tenant.
create function mfa_challenge(token bytea)
returns table (tenant_id uuid, user_id uuid, tenant_slug text, email text, enroll boolean,
               live boolean)
language sql volatile security definer set search_path = public, pg_temp as $$
    select c.tenant_id, c.user_id, c.tenant_slug, c.email, c.enroll,
           c.used_at is null and c.expires_at > now()
      from mfa_challenges c
     where c.token_hash = token
       for update
$$;

revoke all on function mfa_challenge(bytea) from public;
grant execute on function mfa_challenge(bytea) to b2b_app;
