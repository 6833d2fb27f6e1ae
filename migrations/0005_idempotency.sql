-- Responses to commands sent with an Idempotency-Key, kept 24 hours. A row without a response
-- marks a request still in flight, so a concurrent retry cannot run the command twice.
create table idempotency_keys (
    tenant_id    uuid        not null,
    user_id      uuid        not null,
    key          text        not null,
    request_hash bytea       not null,
    status       smallint,
    response     jsonb,
    created_at   timestamptz not null default now(),
    primary key (tenant_id, user_id, key)
);

grant select, insert, update, delete on idempotency_keys to b2b_app;
