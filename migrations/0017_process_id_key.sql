-- The secret the process managers key the ids they derive with (approval requests, contracts
-- drafted from quotes, timers): ids that no user can predict, so none can be occupied first.
-- One row per deployment, 32 random bytes from Postgres's strong random source
-- (gen_random_uuid); never change it while events are in flight, or a redelivered event
-- would derive new ids.
create table process_id_key (
    only_row boolean primary key default true check (only_row),
    key      bytea   not null
);
insert into process_id_key (key)
values (uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid()));
grant select on process_id_key to b2b_app;
