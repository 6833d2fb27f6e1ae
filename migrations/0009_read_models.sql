-- Read models of users, quotes, approvals and contracts: one row per entity (child tables for a
-- quote's lines, an approval's levels and a contract's versions), plain columns a BI tool can
-- filter on, written only by the projector (`projections::{users,quotes,approvals,contracts}`).
-- Every table carries `tenant_id` and the same row-level security as `read.accounts`.
-- Unconstrained `numeric` keeps amounts at the scale the events carry (the currency's).
-- Statuses, roles and tiers are stored as the domain's variant names (`PendingApproval`).

create table read.users (
    id                      uuid primary key,
    tenant_id               uuid        not null,
    -- As registered: lowercase (emails are unique per tenant, case-insensitively).
    email                   text        not null,
    display_name            text        not null,
    roles                   text[]      not null,
    -- The account a Partner user acts for; null for every other user.
    account_id              uuid,
    approval_limit          numeric,
    approval_limit_currency text,
    active                  boolean     not null,
    deactivation_reason     text,
    version                 bigint      not null,
    registered_at           timestamptz not null,
    registered_by           uuid,
    updated_at              timestamptz not null,
    updated_by              uuid
);

create index users_tenant_email on read.users (tenant_id, email, id);

create table read.quotes (
    id               uuid primary key,
    tenant_id        uuid        not null,
    account_id       uuid        not null,
    title            text        not null,
    currency         text        not null,
    tier             text        not null,
    status           text        not null,
    valid_until      timestamptz not null,
    -- Rounded to the currency's minor unit exactly as the aggregate prices the quote: while it
    -- is a draft they follow every line change, from submission on they are the submitted ones.
    subtotal         numeric     not null,
    line_discounts   numeric     not null,
    quote_discount   numeric     not null,
    total            numeric     not null,
    discount_percent numeric     not null,
    discount_reason  text,
    -- As decided at the last submission; null before the first.
    needs_approval   boolean,
    -- The approval that decided the quote (null when none was needed or none decided yet).
    approval_id      uuid,
    submissions      integer     not null default 0,
    submitted_at     timestamptz,
    submitted_by     uuid,
    approved_at      timestamptz,
    rejected_at      timestamptz,
    rejection_reason text,
    sent_at          timestamptz,
    sent_by          uuid,
    accepted_at      timestamptz,
    accepted_by      uuid,
    declined_at      timestamptz,
    declined_by      uuid,
    withdrawn_at     timestamptz,
    withdrawn_by     uuid,
    expired_at       timestamptz,
    -- Why it was declined or withdrawn.
    closing_reason   text,
    version          bigint      not null,
    created_at       timestamptz not null,
    created_by       uuid,
    updated_at       timestamptz not null,
    updated_by       uuid
);

create index quotes_tenant_created on read.quotes (tenant_id, created_at, id);
create index quotes_tenant_total on read.quotes (tenant_id, total, id);
create index quotes_tenant_status on read.quotes (tenant_id, status);
create index quotes_tenant_account on read.quotes (tenant_id, account_id);

create table read.quote_lines (
    quote_id                uuid    not null references read.quotes (id) on delete cascade,
    line_id                 uuid    not null,
    tenant_id               uuid    not null,
    -- Order of addition (1, 2, …); removing a line leaves a gap rather than renumbering.
    position                integer not null,
    sku                     text    not null,
    description             text    not null,
    quantity                numeric not null,
    unit_price              numeric not null,
    volume_discount_percent numeric not null,
    -- quantity × unit price less the volume discount, exact: only the quote's totals round.
    line_total              numeric not null,
    primary key (quote_id, line_id)
);

create table read.approvals (
    id              uuid primary key,
    tenant_id       uuid        not null,
    subject_type    text        not null,
    subject_id      uuid        not null,
    subject_version bigint      not null,
    amount          numeric     not null,
    currency        text        not null,
    requester_id    uuid        not null,
    status          text        not null,
    -- The level waiting for a decision (from 1); null once the approval is decided.
    current_level   integer,
    level_count     integer     not null,
    requested_at    timestamptz not null,
    decided_at      timestamptz,
    -- Who rejected or cancelled it (the last approver when granted).
    decided_by      uuid,
    decision_reason text,
    version         bigint      not null,
    updated_at      timestamptz not null
);

create index approvals_tenant_requested on read.approvals (tenant_id, requested_at, id);
create index approvals_tenant_status on read.approvals (tenant_id, status);
create index approvals_subject on read.approvals (tenant_id, subject_type, subject_id);

create table read.approval_levels (
    approval_id      uuid        not null references read.approvals (id) on delete cascade,
    level            integer     not null,
    tenant_id        uuid        not null,
    role             text        not null,
    due_at           timestamptz not null,
    approved_by      uuid,
    approved_at      timestamptz,
    comment          text,
    -- The one user who may decide the level while it is delegated.
    delegated_to     uuid,
    escalated        boolean     not null default false,
    -- When the SLA was breached (the due time that passed); null if it never was.
    breached_at      timestamptz,
    primary key (approval_id, level)
);

create table read.contracts (
    id                       uuid primary key,
    tenant_id                uuid        not null,
    account_id               uuid        not null,
    -- Set when drafted from an accepted quote.
    quote_id                 uuid,
    title                    text        not null,
    status                   text        not null,
    value                    numeric     not null,
    currency                 text        not null,
    start_date               date        not null,
    end_date                 date        not null,
    terms                    text        not null,
    -- The contract's own version (1, then one more per amendment), not the stream's.
    version                  integer     not null,
    -- Renewals: 1 for the first term.
    term                     integer     not null default 1,
    customer_signatory       text,
    customer_signatory_email text,
    customer_signed_at       timestamptz,
    vendor_signatory         text,
    vendor_signatory_email   text,
    vendor_signed_at         timestamptz,
    approval_id              uuid,
    activated_on             date,
    terminated_reason        text,
    effective_date           date,
    expired_on               date,
    created_at               timestamptz not null,
    created_by               uuid,
    updated_at               timestamptz not null,
    updated_by               uuid,
    -- The last event of the contract's stream this row reflects.
    stream_version           bigint      not null
);

create index contracts_tenant_created on read.contracts (tenant_id, created_at, id);
create index contracts_tenant_status on read.contracts (tenant_id, status);
create index contracts_tenant_account on read.contracts (tenant_id, account_id);
create index contracts_tenant_end on read.contracts (tenant_id, end_date);

-- One row per contract version: what the terms and value were, and who made that version.
create table read.contract_versions (
    contract_id uuid        not null references read.contracts (id) on delete cascade,
    version     integer     not null,
    tenant_id   uuid        not null,
    terms       text        not null,
    value       numeric     not null,
    amended_at  timestamptz not null,
    amended_by  uuid,
    primary key (contract_id, version)
);

-- Every read is scoped to the tenant the transaction names; without one it sees nothing.
alter table read.users enable row level security;
create policy tenant_isolation on read.users
    using (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
    with check (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);

alter table read.quotes enable row level security;
create policy tenant_isolation on read.quotes
    using (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
    with check (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);

alter table read.quote_lines enable row level security;
create policy tenant_isolation on read.quote_lines
    using (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
    with check (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);

alter table read.approvals enable row level security;
create policy tenant_isolation on read.approvals
    using (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
    with check (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);

alter table read.approval_levels enable row level security;
create policy tenant_isolation on read.approval_levels
    using (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
    with check (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);

alter table read.contracts enable row level security;
create policy tenant_isolation on read.contracts
    using (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
    with check (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);

alter table read.contract_versions enable row level security;
create policy tenant_isolation on read.contract_versions
    using (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
    with check (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);

grant select, insert, update, delete on
    read.users, read.quotes, read.quote_lines, read.approvals, read.approval_levels,
    read.contracts, read.contract_versions
    to b2b_app;
grant select on
    read.users, read.quotes, read.quote_lines, read.approvals, read.approval_levels,
    read.contracts, read.contract_versions
    to b2b_bi;
