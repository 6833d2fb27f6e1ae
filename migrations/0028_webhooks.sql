-- Outgoing webhooks (crate `webhooks`). An endpoint is tenant configuration holding a signing
-- secret, so, like API keys and TOTP secrets, it lives in a table and not in the event log: a
-- secret must never enter an immutable, exported, published history. The secret is kept as
-- is (HMAC needs it); `b2b_app` (the APIs) may not even read that column, only the workers
-- that sign deliveries may.
create table webhook_endpoints (
    id                uuid        primary key,
    tenant_id         uuid        not null references tenants (id),
    url               text        not null,
    event_types       text[]      not null,
    description       text        not null default '',
    secret            text        not null,
    enabled           boolean     not null default true,
    -- Why it is disabled: `admin` (DisableWebhook) or `failing` (a delivery ran out of its
    -- retry window).
    disabled_reason   text        check (disabled_reason in ('admin', 'failing')),
    created_at        timestamptz not null default now(),
    created_by        uuid        not null,
    updated_at        timestamptz not null default now(),
    secret_rotated_at timestamptz,
    check (enabled = (disabled_reason is null)),
    unique (id, tenant_id)
);
create index webhook_endpoints_tenant_created on webhook_endpoints (tenant_id, created_at, id);

-- One event for one endpoint. Written by the `webhooks` consumer group in the transaction that
-- advances its checkpoint (so each matching event is recorded once), sent by the delivery
-- worker. `id` is the `webhook-id` header, the same on every attempt.
create table webhook_deliveries (
    id               uuid        primary key,
    tenant_id        uuid        not null,
    endpoint_id      uuid        not null,
    global_position  bigint      not null,
    aggregate_type   text        not null,
    aggregate_id     text        not null,
    sequence         bigint      not null,
    event_type       text        not null,
    body             text        not null,
    status           text        not null default 'pending'
                                 check (status in ('pending', 'delivered', 'parked')),
    attempts         integer     not null default 0,
    -- The start of its retry window: creation, or the replay that put it back.
    retry_from       timestamptz not null default now(),
    next_attempt_at  timestamptz,
    -- While an attempt is in flight; a worker that died mid-attempt leaves it to expire, and
    -- the delivery is sent again (at least once).
    leased_until     timestamptz,
    last_status_code integer,
    last_error       text,
    last_latency_ms  integer,
    delivered_at     timestamptz,
    created_at       timestamptz not null default now(),
    foreign key (endpoint_id, tenant_id) references webhook_endpoints (id, tenant_id)
        on delete cascade,
    unique (endpoint_id, aggregate_type, aggregate_id, sequence)
);
create index webhook_deliveries_due on webhook_deliveries (next_attempt_at)
    where status = 'pending';
create index webhook_deliveries_open on webhook_deliveries
    (endpoint_id, aggregate_type, aggregate_id, sequence) where status <> 'delivered';
create index webhook_deliveries_log on webhook_deliveries (endpoint_id, created_at desc, id);

-- Every attempt of a delivery: the delivery log.
create table webhook_attempts (
    delivery_id uuid        not null references webhook_deliveries (id) on delete cascade,
    attempt     integer     not null,
    tenant_id   uuid        not null,
    at          timestamptz not null default now(),
    status_code integer,
    error       text,
    latency_ms  integer     not null,
    primary key (delivery_id, attempt)
);

-- Row-level security: the APIs and the consumer group see the tenant their transaction names.
-- The delivery worker, which names none, sees every tenant's deliveries (as the timer worker
-- sees every tenant's timers); a transaction that names a tenant never sees another's, so the
-- consumer group's match of events to endpoints stays within the event's tenant.
do $$
declare
    t text;
begin
    foreach t in array array['webhook_endpoints', 'webhook_deliveries', 'webhook_attempts'] loop
        execute format('alter table %I enable row level security', t);
        execute format('create policy tenant_isolation on %I to b2b_app '
                       'using (tenant_id = nullif(current_setting(''app.tenant_id'', true), '''')::uuid) '
                       'with check (tenant_id = nullif(current_setting(''app.tenant_id'', true), '''')::uuid)', t);
        execute format('create policy no_tenant_named on %I to b2b_worker '
                       'using (coalesce(current_setting(''app.tenant_id'', true), '''') = '''') '
                       'with check (coalesce(current_setting(''app.tenant_id'', true), '''') = '''')', t);
    end loop;
end
$$;

grant select (id, tenant_id, url, event_types, description, enabled, disabled_reason,
              created_at, created_by, updated_at, secret_rotated_at)
    on webhook_endpoints to b2b_app;
grant insert, delete on webhook_endpoints to b2b_app;
grant update (url, event_types, description, secret, enabled, disabled_reason, updated_at,
              secret_rotated_at)
    on webhook_endpoints to b2b_app;
grant select, update on webhook_deliveries to b2b_app;
grant select on webhook_attempts to b2b_app;
grant select (secret) on webhook_endpoints to b2b_worker;
grant insert on webhook_deliveries to b2b_worker;
grant insert on webhook_attempts to b2b_worker;
