-- One place decodes events (`event_store::decode`): a payload stored under an older version of
-- its schema is upcast before the aggregate folds it, so the command path's stream read returns
-- each event's type and version along with its payload.
drop function stream_events(uuid, text, text, bigint);

create function stream_events(
    tenant uuid, stream_type text, stream_id text, after_sequence bigint
)
returns table (sequence bigint, tenant_id uuid, event_type text, event_version text,
               payload text)
language plpgsql set app.tenant_id = '' as $$
begin
    perform set_config('app.tenant_id', tenant::text, true);
    return query
        select e.sequence, e.tenant_id, e.event_type, e.event_version, e.payload::text
          from events e
         where e.aggregate_type = stream_type and e.aggregate_id = stream_id
           and e.sequence > after_sequence
         order by e.sequence;
end
$$;

revoke all on function stream_events(uuid, text, text, bigint) from public;
grant execute on function stream_events(uuid, text, text, bigint) to b2b_app;
