-- `create or replace view` for every view that reads one of the `read` tables in $1, directly
-- or through other views, innermost first. Run with `search_path = pg_catalog`, so every name
-- in the definitions prints schema-qualified and, re-run after the swap, binds to the new
-- tables. Options (`security_invoker`, ...) are restated: `create or replace` would reset them.
with recursive dependents (oid, depth) as (
    select distinct r.ev_class, 1
    from pg_depend d
    join pg_rewrite r on r.oid = d.objid
    where d.classid = 'pg_rewrite'::regclass
      and d.refobjid in (select c.oid from pg_class c
                         where c.relnamespace = 'read'::regnamespace and c.relname = any($1::text[]))
      and r.ev_class <> d.refobjid
    union
    select r.ev_class, dependents.depth + 1
    from dependents
    join pg_depend d on d.refobjid = dependents.oid and d.classid = 'pg_rewrite'::regclass
    join pg_rewrite r on r.oid = d.objid
    where r.ev_class <> d.refobjid and dependents.depth < 16
)
select format('create or replace view %I.%I%s as %s',
           n.nspname, c.relname,
           coalesce(' with (' || array_to_string(c.reloptions, ', ') || ')', ''),
           pg_get_viewdef(c.oid))
from (select oid, max(depth) as depth from dependents group by oid) v
join pg_class c on c.oid = v.oid and c.relkind = 'v'
join pg_namespace n on n.oid = c.relnamespace
order by v.depth, c.relname
