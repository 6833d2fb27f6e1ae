-- The query API's audit log pages one tenant's events in commit order, optionally for one user.
-- Without these it would walk the whole store's commit order and filter by tenant.
create index events_tenant_commit_order on events (tenant_id, tx_id, global_position);
create index events_tenant_user_commit_order
    on events (tenant_id, (metadata ->> 'user_id'), tx_id, global_position);
