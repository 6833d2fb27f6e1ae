-- What `create table ... (like ... including all)` does not copy, as statements for the rebuild
-- schema $2, of the kinds (`step`) in $3: 1 foreign keys (those the copy lacks yet), 2-3
-- row-level security, 4 policies, 5 grants, 6 the table comment, of each `read` table in $1. Run with `search_path = read`, so that references to `read` tables print
-- unqualified and bind to the rebuild's copies when the statements run.
with source as (
    select c.oid, c.relname, c.relowner, c.relacl, c.relrowsecurity, c.relforcerowsecurity,
           array_position($1::text[], c.relname::text) as ord
    from pg_class c
    where c.relnamespace = 'read'::regnamespace and c.relname = any($1::text[])
)
select statement from (
    select s.ord, 1 as step, format('alter table %I.%I add constraint %I %s',
               $2::text, s.relname, k.conname, pg_get_constraintdef(k.oid)) as statement
    from source s join pg_constraint k on k.conrelid = s.oid and k.contype = 'f'
    where not exists (select 1 from pg_constraint c
                      where c.conrelid = to_regclass(format('%I.%I', $2::text, s.relname))
                        and c.conname = k.conname)
    union all
    select s.ord, 2, format('alter table %I.%I enable row level security', $2::text, s.relname)
    from source s where s.relrowsecurity
    union all
    select s.ord, 3, format('alter table %I.%I force row level security', $2::text, s.relname)
    from source s where s.relforcerowsecurity
    union all
    select s.ord, 4, format('create policy %I on %I.%I as %s for %s to %s%s%s',
               p.policyname, $2::text, s.relname, p.permissive, p.cmd,
               (select string_agg(case when r = 'public' then 'public' else quote_ident(r) end, ', ')
                from unnest(p.roles) r),
               coalesce(' using (' || p.qual || ')', ''),
               coalesce(' with check (' || p.with_check || ')', ''))
    from source s join pg_policies p on p.schemaname = 'read' and p.tablename = s.relname
    union all
    select s.ord, 5, format('grant %s on %I.%I to %s%s', a.privilege_type, $2::text, s.relname,
               case when a.grantee = 0 then 'public' else a.grantee::regrole::text end,
               case when a.is_grantable then ' with grant option' else '' end)
    from source s cross join lateral aclexplode(s.relacl) a
    where a.grantee <> s.relowner
    union all
    select s.ord, 6, format('comment on table %I.%I is %L', $2::text, s.relname,
               obj_description(s.oid, 'pg_class'))
    from source s where obj_description(s.oid, 'pg_class') is not null
) statements
where step = any($3::int[])
order by step, ord
