-- BI: the views DOMAIN.md names (quotes by status and month, pipeline value, approval cycle
-- times, SLA breaches, renewals due) and read-only BI logins pinned to one tenant each.
-- Documented column by column in docs/read-models.md.
--
-- Tenant scoping for BI. `b2b_app` reads as the tenant its transaction names in `app.tenant_id`
-- (the services set it per request). A BI login cannot be trusted with that setting: any role may
-- `set app.tenant_id` to whatever it likes. So BI logins are pinned by a row in `read.bi_logins`
-- (written only by an operator), and every read table gets:
--   * `tenant_isolation` (unchanged expression) now applies `to b2b_app` only, so setting
--     `app.tenant_id` opens nothing to anyone else;
--   * `bi_read`: members of `b2b_bi` may select the rows of the tenant their login is mapped to;
--   * `bi_tenant_pin`: a restrictive policy for members of `b2b_bi`, so even a login that was
--     (wrongly) also granted `b2b_app` is held to its mapped tenant.
-- A BI login without a mapping row sees no rows at all.

-- Which tenant each BI login reads. Written by an operator (the schema owner), never by a service.
create table read.bi_logins (
    -- The Postgres login (`current_user` while it queries); one tenant per login.
    login      name primary key,
    tenant_id  uuid        not null references tenants (id),
    created_at timestamptz not null default now()
);

-- A BI login may read its own row (the policies below look it up as the querying user) and no
-- other: which logins exist and which tenants they read is none of its business.
alter table read.bi_logins enable row level security;
create policy own_login on read.bi_logins for select to b2b_bi
    using (login = current_user);

do $$
declare
    t text;
    pinned constant text :=
        'tenant_id = (select b.tenant_id from read.bi_logins b where b.login = current_user)';
begin
    foreach t in array array['accounts', 'users', 'quotes', 'quote_lines', 'approvals',
                             'approval_levels', 'contracts', 'contract_versions'] loop
        -- The services' policy, expression untouched; only who it applies to narrows.
        execute format('alter policy tenant_isolation on read.%I to b2b_app', t);
        execute format('create policy bi_read on read.%I for select to b2b_bi using (%s)',
                       t, pinned);
        execute format('create policy bi_tenant_pin on read.%I as restrictive for all to b2b_bi '
                       'using (%s) with check (%s)', t, pinned, pinned);
    end loop;
end
$$;

-- Views run with the querying role's privileges and row-level security (security_invoker), so
-- a BI login sees exactly its tenant's rows through them too.

-- Quotes by status, currency and the (UTC) month they were drafted in.
create view read.quotes_by_status_month with (security_invoker = true) as
select q.tenant_id,
       date_trunc('month', q.created_at at time zone 'UTC')::date as month,
       q.status,
       q.currency,
       count(*)     as quote_count,
       sum(q.total) as total_value
  from read.quotes q
 group by q.tenant_id, date_trunc('month', q.created_at at time zone 'UTC')::date, q.status,
          q.currency;

-- Open quotes (not yet accepted, declined, rejected, withdrawn or expired) by account.
create view read.pipeline_value with (security_invoker = true) as
select q.tenant_id,
       q.currency,
       q.status,
       q.account_id,
       a.name             as account_name,
       count(*)           as quote_count,
       sum(q.total)       as total_value,
       min(q.valid_until) as next_valid_until
  from read.quotes q
  left join read.accounts a on a.id = q.account_id and a.tenant_id = q.tenant_id
 where q.status in ('Draft', 'PendingApproval', 'Approved', 'Sent')
 group by q.tenant_id, q.currency, q.status, q.account_id, a.name;

-- One row per decided approval (Approved, Rejected or Cancelled): how long it took.
create view read.approval_cycle_times with (security_invoker = true) as
select a.tenant_id,
       a.id                                          as approval_id,
       a.subject_type,
       a.subject_id,
       a.status,
       a.amount,
       a.currency,
       a.requester_id,
       a.decided_by,
       a.requested_at,
       a.decided_at,
       a.decided_at - a.requested_at                 as cycle_time,
       extract(epoch from a.decided_at - a.requested_at) as cycle_seconds,
       a.level_count                                 as levels,
       coalesce(l.levels_approved, 0)                as levels_approved,
       coalesce(l.escalations, 0)                    as escalations
  from read.approvals a
  left join (select approval_id,
                    count(*) filter (where approved_at is not null)::integer as levels_approved,
                    count(*) filter (where escalated)::integer               as escalations
               from read.approval_levels
              group by approval_id) l on l.approval_id = a.id
 where a.decided_at is not null;

-- One row per approval level whose SLA was breached (the level was escalated).
create view read.sla_breaches with (security_invoker = true) as
select l.tenant_id,
       l.approval_id,
       l.level,
       l.role,
       l.due_at,
       l.breached_at,
       l.approved_at,
       l.approved_by,
       a.status                         as approval_status,
       coalesce(a.current_level = l.level, false) as still_open,
       a.subject_type,
       a.subject_id,
       a.amount,
       a.currency,
       a.requested_at
  from read.approval_levels l
  join read.approvals a on a.id = l.approval_id and a.tenant_id = l.tenant_id
 where l.escalated;

-- Active contracts whose end date falls within the next 90 days (today included).
create view read.renewals_due with (security_invoker = true) as
select c.tenant_id,
       c.id                      as contract_id,
       c.account_id,
       a.name                    as account_name,
       c.title,
       c.value,
       c.currency,
       c.term,
       c.start_date,
       c.end_date,
       c.end_date - current_date as days_left
  from read.contracts c
  left join read.accounts a on a.id = c.account_id and a.tenant_id = c.tenant_id
 where c.status = 'Active'
   and c.end_date >= current_date
   and c.end_date <= current_date + 90;

-- BI reads every read table and view, and writes nothing anywhere.
grant select on
    read.accounts, read.users, read.quotes, read.quote_lines, read.approvals,
    read.approval_levels, read.contracts, read.contract_versions, read.bi_logins,
    read.quotes_by_status_month, read.pipeline_value, read.approval_cycle_times,
    read.sla_breaches, read.renewals_due
    to b2b_bi;
revoke insert, update, delete, truncate, references, trigger
    on all tables in schema read from b2b_bi;
revoke all on all tables in schema public from b2b_bi;
revoke all on all sequences in schema public from b2b_bi;
revoke create on schema read, public from b2b_bi;
