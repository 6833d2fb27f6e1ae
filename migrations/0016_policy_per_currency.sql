-- Tenant policies name their currencies, each with its own approval threshold and bands
-- (`aggregates::TenantPolicy::currencies`). A policy stored in the earlier shape applied one
-- threshold and one set of bands to every currency: it keeps doing so for the currencies a
-- new tenant starts with.
update tenant_policies
   set policy = (policy - 'approval_threshold' - 'approval_bands')
       || jsonb_build_object('currencies', (
            select jsonb_object_agg(code, jsonb_build_object(
                       'approval_threshold', policy -> 'approval_threshold',
                       'approval_bands', policy -> 'approval_bands'))
              from unnest(array['CHF', 'EUR', 'GBP', 'JPY', 'USD']) as code)),
       updated_at = now()
 where policy ? 'approval_threshold';

-- Every tenant keeps trading in the currencies its accounts and contracts already use: a currency
-- found in its events that its policy (stored, or the default for a tenant without a row) does
-- not list is added with the policy's euro amounts. The default is the policy a new tenant got
-- when this migration was written.
create temporary table policy_default on commit drop as
select '{"currencies": {"CHF": {"approval_threshold": "10000", "approval_bands": [{"up_to": "10000", "levels": ["Manager"]}, {"up_to": "50000", "levels": ["Manager", "TenantAdmin"]}, {"up_to": null, "levels": ["Manager", "TenantAdmin", "TenantAdmin"]}]}, "EUR": {"approval_threshold": "10000", "approval_bands": [{"up_to": "10000", "levels": ["Manager"]}, {"up_to": "50000", "levels": ["Manager", "TenantAdmin"]}, {"up_to": null, "levels": ["Manager", "TenantAdmin", "TenantAdmin"]}]}, "GBP": {"approval_threshold": "10000", "approval_bands": [{"up_to": "10000", "levels": ["Manager"]}, {"up_to": "50000", "levels": ["Manager", "TenantAdmin"]}, {"up_to": null, "levels": ["Manager", "TenantAdmin", "TenantAdmin"]}]}, "JPY": {"approval_threshold": "1500000", "approval_bands": [{"up_to": "1500000", "levels": ["Manager"]}, {"up_to": "7500000", "levels": ["Manager", "TenantAdmin"]}, {"up_to": null, "levels": ["Manager", "TenantAdmin", "TenantAdmin"]}]}, "USD": {"approval_threshold": "10000", "approval_bands": [{"up_to": "10000", "levels": ["Manager"]}, {"up_to": "50000", "levels": ["Manager", "TenantAdmin"]}, {"up_to": null, "levels": ["Manager", "TenantAdmin", "TenantAdmin"]}]}}, "max_discount_without_approval": "10", "level_sla_hours": 24, "volume_discounts": {"standard": [{"min_quantity": "10", "percent": "2"}, {"min_quantity": "50", "percent": "5"}], "gold": [{"min_quantity": "10", "percent": "5"}, {"min_quantity": "50", "percent": "8"}, {"min_quantity": "100", "percent": "10"}], "enterprise": [{"min_quantity": "10", "percent": "8"}, {"min_quantity": "50", "percent": "12"}, {"min_quantity": "100", "percent": "15"}]}}'::jsonb as policy;

create temporary table currencies_in_use on commit drop as
select distinct e.tenant_id, upper(e.payload -> e.event_type ->> 'currency') as code
  from events e
 where e.event_type in ('AccountOpened', 'ContractDrafted')
   and e.payload -> e.event_type ->> 'currency' is not null;

insert into tenant_policies (tenant_id, policy)
select distinct u.tenant_id, d.policy
  from currencies_in_use u cross join policy_default d
 where not exists (select 1 from tenant_policies p where p.tenant_id = u.tenant_id)
   and not (d.policy -> 'currencies') ? u.code
on conflict (tenant_id) do nothing;

update tenant_policies p
   set policy = jsonb_set(p.policy, '{currencies}', (p.policy -> 'currencies') || (
           select jsonb_object_agg(u.code, coalesce(p.policy -> 'currencies' -> 'EUR',
                                                    '{"approval_threshold": "10000", "approval_bands": [{"up_to": "10000", "levels": ["Manager"]}, {"up_to": "50000", "levels": ["Manager", "TenantAdmin"]}, {"up_to": null, "levels": ["Manager", "TenantAdmin", "TenantAdmin"]}]}'::jsonb))
             from currencies_in_use u
            where u.tenant_id = p.tenant_id and not (p.policy -> 'currencies') ? u.code)),
       updated_at = now()
 where exists (select 1 from currencies_in_use u
                where u.tenant_id = p.tenant_id and not (p.policy -> 'currencies') ? u.code);
