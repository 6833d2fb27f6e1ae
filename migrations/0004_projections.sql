-- One row per (projection, stream): the last sequence applied. A delivery applies only when it
-- is exactly the next sequence, in the same transaction as its read-model change.
create table projection_checkpoints (
    projection     text        not null,
    aggregate_type text        not null,
    aggregate_id   text        not null,
    last_sequence  bigint      not null,
    updated_at     timestamptz not null default now(),
    primary key (projection, aggregate_type, aggregate_id)
);

grant select, insert, update on projection_checkpoints to b2b_app;

create schema read;
grant usage on schema read to b2b_app, b2b_bi;

create table read.accounts (
    id                   uuid primary key,
    tenant_id            uuid        not null,
    name                 text        not null,
    legal_name           text        not null,
    country              text        not null,
    billing_email        text        not null,
    currency             text        not null,
    tier                 text        not null,
    status               text        not null,
    -- Unconstrained numeric keeps the scale the amount was set with (the currency's).
    credit_limit         numeric,
    api_quota_per_minute integer,
    status_reason        text,
    active_contracts     integer     not null default 0,
    version              bigint      not null,
    opened_at            timestamptz not null,
    opened_by            uuid,
    updated_at           timestamptz not null,
    updated_by           uuid
);

create index accounts_tenant_name on read.accounts (tenant_id, name, id);

-- Every read is scoped to the tenant the transaction names; without one it sees nothing.
alter table read.accounts enable row level security;
create policy tenant_isolation on read.accounts
    using (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
    with check (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);

grant select, insert, update, delete on read.accounts to b2b_app;
grant select on read.accounts to b2b_bi;
