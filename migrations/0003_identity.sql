-- Tenants and sign-in credentials. Password hashes live here, never in the event log.
create table tenants (
    id         uuid primary key,
    slug       text not null unique check (slug ~ '^[a-z0-9][a-z0-9-]{1,62}$'),
    name       text not null,
    created_at timestamptz not null default now()
);

create table user_credentials (
    user_id       uuid primary key,
    tenant_id     uuid not null references tenants (id),
    email         text not null check (email = lower(email)),
    password_hash text not null,
    roles         text[] not null,
    account_id    uuid,
    active        boolean not null default true,
    created_at    timestamptz not null default now(),
    unique (tenant_id, email)
);

-- Refresh tokens are stored only as their sha256.
create table sessions (
    id                 uuid primary key,
    user_id            uuid not null references user_credentials (user_id),
    refresh_token_hash bytea not null unique,
    created_at         timestamptz not null default now(),
    expires_at         timestamptz not null,
    revoked_at         timestamptz
);

grant select on tenants, user_credentials to b2b_app;
grant select, insert, update on sessions to b2b_app;
