-- Roles the services and BI tools act as. They are cluster-wide, so creating them must tolerate
-- another database's migration having created them first (tests migrate many databases at once).
do $$
begin
    begin
        create role b2b_app nologin;
    exception when others then null;
    end;
    begin
        create role b2b_bi nologin;
    exception when others then null;
    end;
end
$$;
