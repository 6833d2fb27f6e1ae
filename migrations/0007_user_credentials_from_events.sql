-- Sign-in reads user_credentials; the User stream is the truth. This trigger keeps the two in
-- step inside the append's own transaction (a "transactional" handler), so a deactivated user
-- cannot sign in a moment later, and the unique (tenant_id, email) index turns two concurrent
-- registrations of one address into a conflict. Only the password hash is written elsewhere:
-- it never enters an event.
alter table user_credentials alter column password_hash set default '';

create function user_credentials_from_events() returns trigger
language plpgsql security definer set search_path = public as $$
declare
    body    json := new.payload -> new.event_type;
    target_user uuid := new.aggregate_id::uuid;
begin
    case new.event_type
    when 'UserRegistered' then
        insert into user_credentials (user_id, tenant_id, email, roles, account_id)
        values (target_user, new.tenant_id, body ->> 'email',
                array(select json_array_elements_text(body -> 'roles')),
                (body ->> 'account_id')::uuid);
    when 'UserRolesChanged' then
        update user_credentials c
           set roles = array(select json_array_elements_text(body -> 'to')),
               account_id = (body ->> 'account_id')::uuid
         where c.user_id = target_user;
    when 'PartnerAccountLinked' then
        update user_credentials c set account_id = (body ->> 'account_id')::uuid
         where c.user_id = target_user;
    when 'UserEmailChanged' then
        update user_credentials c set email = body ->> 'to'
         where c.user_id = target_user;
    when 'UserDeactivated' then
        update user_credentials c set active = false
         where c.user_id = target_user;
        update sessions s set revoked_at = now()
         where s.user_id = target_user and s.revoked_at is null;
    when 'UserReactivated' then
        update user_credentials c set active = true
         where c.user_id = target_user;
    else
        null;
    end case;
    return null;
end
$$;

create trigger events_user_credentials after insert on events
    for each row when (new.aggregate_type = 'User')
    execute function user_credentials_from_events();

grant update (password_hash) on user_credentials to b2b_app;
