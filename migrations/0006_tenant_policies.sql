-- Per-tenant rule configuration (approval thresholds and chains, volume discounts, SLAs) as the
-- JSON form of `aggregates::TenantPolicy`. A tenant without a row uses the defaults.
create table tenant_policies (
    tenant_id  uuid primary key references tenants (id),
    policy     jsonb       not null,
    updated_at timestamptz not null default now()
);

grant select on tenant_policies to b2b_app;
