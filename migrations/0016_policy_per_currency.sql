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
