-- The sweep removes receipts older than their 24 hours by `created_at`. Receipts are inserted
-- in time order, so a BRIN index finds the old ones for almost nothing per insert (a B-tree
-- would add a page write to every keyed command).
create index idempotency_keys_created_at on idempotency_keys using brin (created_at);
