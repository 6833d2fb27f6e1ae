-- Refresh tokens rotate: each use retires the token and issues the next one in the same session.
-- Retired tokens stay (as sha256 hashes) so that a second use of one is recognised: it means the
-- token was copied, and the whole session ends.
create table refresh_tokens (
    token_hash bytea primary key,
    session_id uuid not null references sessions (id),
    issued_at  timestamptz not null default now(),
    used_at    timestamptz
);
create index refresh_tokens_session on refresh_tokens (session_id);

insert into refresh_tokens (token_hash, session_id, issued_at)
    select refresh_token_hash, id, created_at from sessions;
alter table sessions drop column refresh_token_hash;
-- Deactivating a user revokes their sessions (0007); this keeps that update off a full scan.
create index sessions_user on sessions (user_id);

grant select, insert, update on refresh_tokens to b2b_app;

-- Failed sign-ins per (tenant slug, e-mail) as typed, whether or not either exists: a lock then
-- says nothing about which addresses are real. `tenant_id` is filled when the slug names a
-- tenant, so that tenant's admins can see the lock.
create table sign_in_failures (
    tenant_slug       text        not null,
    email             text        not null,
    tenant_id         uuid references tenants (id),
    failures          integer     not null,
    window_started_at timestamptz not null,
    locked_until      timestamptz,
    primary key (tenant_slug, email)
);
create index sign_in_failures_tenant on sign_in_failures (tenant_id, email);

grant select, insert, update, delete on sign_in_failures to b2b_app;

-- Requests per user and per Partner account in the current minute, shared by every API replica.
-- Unlogged: a counter needs no WAL, so counting a request costs no disk flush; a crash resets
-- the counters, which only forgives one minute's excess.
create unlogged table request_counts (
    subject_kind text        not null check (subject_kind in ('user', 'account')),
    subject_id   uuid        not null,
    window_start timestamptz not null,
    requests     integer     not null,
    primary key (subject_kind, subject_id)
);

grant select, insert, update on request_counts to b2b_app;

-- An account's API quota for its Partner users, read by admission before any tenant is set on
-- the connection (read.accounts is row-level secured by tenant, hence security definer).
create function account_api_quota(tenant uuid, account uuid) returns integer
language sql stable security definer set search_path = public as $$
    select a.api_quota_per_minute from read.accounts a
     where a.id = account and a.tenant_id = tenant
$$;

revoke all on function account_api_quota(uuid, uuid) from public;
grant execute on function account_api_quota(uuid, uuid) to b2b_app;
