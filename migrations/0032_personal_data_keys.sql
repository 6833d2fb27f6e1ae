-- Crypto-shredding. Personal data in an event (names, e-mails, signatories: see
-- `aggregates::personal`) is sealed by the append, before the event is hashed and stored, with a
-- key of the person it is about. Forgetting the person destroys their keys in the forgetting
-- event's own transaction: what was sealed with them reads as erased from then on, everywhere
-- (history, `asOf`, exports, read models, webhook bodies, messages still in RabbitMQ), while
-- every stored byte, and so the hash chain, stays as it was.
create table subject_keys (
    key_id       uuid primary key,
    tenant_id    uuid not null,
    -- `user:<id>` or `account:<id>` (`aggregates::Subject`).
    subject      text not null,
    -- XChaCha20-Poly1305; null once the subject is forgotten.
    secret       bytea check (octet_length(secret) = 32),
    created_at   timestamptz not null default now(),
    forgotten_at timestamptz,
    check ((secret is null) = (forgotten_at is not null))
);
create index subject_keys_by_subject on subject_keys (tenant_id, subject);

-- A new subject's key commits with the append that first seals with it, as b2b_app, for the
-- tenant the append names. Secrets are read only through the functions below, which name the
-- tenant of every key they reveal; BI tools never see them.
alter table subject_keys enable row level security;
create policy tenant_isolation on subject_keys to b2b_app
    using (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
    with check (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
grant insert on subject_keys to b2b_app;

-- The live secrets of the given keys, each key paired with the tenant whose event names it: a
-- key is never revealed for another tenant's event.
create function subject_secrets(tenants uuid[], keys uuid[])
returns table (key_id uuid, secret bytea)
language sql stable security definer set search_path = public as $$
    select k.key_id, k.secret
      from subject_keys k
      join unnest(tenants, keys) as wanted (tenant_id, key_id)
        on wanted.tenant_id = k.tenant_id and wanted.key_id = k.key_id
     where k.secret is not null
$$;

-- The key new personal data about a subject is sealed with: its newest live one.
create function subject_key(tenant uuid, subject_name text)
returns table (key_id uuid, secret bytea)
language sql stable security definer set search_path = public as $$
    select k.key_id, k.secret
      from subject_keys k
     where k.tenant_id = tenant and k.subject = subject_name and k.secret is not null
     order by k.created_at desc
     limit 1
$$;

-- As `subject_secrets`, keeping the keys locked until the caller's transaction ends: a
-- projector writing what it revealed makes a concurrent forgetting wait for its commit.
create function subject_secrets_held(tenants uuid[], keys uuid[])
returns table (key_id uuid, secret bytea)
language sql volatile security definer set search_path = public as $$
    select k.key_id, k.secret
      from subject_keys k
      join unnest(tenants, keys) as wanted (tenant_id, key_id)
        on wanted.tenant_id = k.tenant_id and wanted.key_id = k.key_id
     where k.secret is not null
       for share of k
$$;

revoke all on function subject_secrets_held(uuid[], uuid[]) from public;
grant execute on function subject_secrets_held(uuid[], uuid[]) to b2b_app;
revoke all on function subject_secrets(uuid[], uuid[]) from public;
revoke all on function subject_key(uuid, text) from public;
grant execute on function subject_secrets(uuid[], uuid[]), subject_key(uuid, text) to b2b_app;

-- A subject's keys are created and destroyed one transaction at a time, so a key made by an
-- append racing a forgetting is either destroyed by it or sees that it happened.
create function lock_subject(tenant uuid, subject_name text) returns void
language sql as $$
    select pg_advisory_xact_lock(hashtextextended(tenant::text || '/' || subject_name, 32))
$$;

-- Forgetting destroys the subject's keys in the same transaction as the event that records it.
create function forget_subject_keys() returns trigger
language plpgsql security definer set search_path = public as $$
declare
    kind    text := case new.event_type when 'UserForgotten' then 'user' else 'account' end;
    subject_name text := kind || ':' || new.aggregate_id::uuid::text;
begin
    perform lock_subject(new.tenant_id, subject_name);
    update subject_keys
       set secret = null, forgotten_at = now()
     where tenant_id = new.tenant_id and subject = subject_name and secret is not null;
    return null;
end
$$;

-- A forgotten user is forgotten for good: no new key may seal anything about them (an
-- account may be given new contact data, under a new key, and forgotten again).
create function subject_keys_refuse_forgotten_users() returns trigger
language plpgsql security definer set search_path = public as $$
begin
    perform lock_subject(new.tenant_id, new.subject);
    if new.subject like 'user:%' and exists (
        select 1 from subject_keys k
         where k.tenant_id = new.tenant_id and k.subject = new.subject
           and k.forgotten_at is not null
    ) then
        raise exception 'the user % was forgotten', new.subject
            using errcode = 'P0001', constraint = 'subject_forgotten';
    end if;
    return new;
end
$$;

create trigger subject_keys_refuse_forgotten_users before insert on subject_keys
    for each row execute function subject_keys_refuse_forgotten_users();

create trigger events_forget_subject_keys after insert on events
    for each row when (new.event_type in ('UserForgotten', 'AccountContactDataForgotten'))
    execute function forget_subject_keys();

-- Sign-in still needs the address in plain text, but the event holds it sealed: the append
-- hands it to this trigger for its own transaction only (`app.sign_in_email`). A forgotten user
-- keeps no address, and so can never sign in again.
alter table user_credentials alter column email drop not null;

create or replace function user_credentials_from_events() returns trigger
language plpgsql security definer set search_path = public as $$
declare
    body        json := new.payload -> new.event_type;
    target_user uuid := new.aggregate_id::uuid;
    sign_in     text := nullif(current_setting('app.sign_in_email', true), '');
begin
    case new.event_type
    when 'UserRegistered' then
        if sign_in is null then
            raise exception 'UserRegistered appended without its sign-in e-mail';
        end if;
        insert into user_credentials (user_id, tenant_id, email, roles, account_id)
        values (target_user, new.tenant_id, sign_in,
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
        if sign_in is null then
            raise exception 'UserEmailChanged appended without its sign-in e-mail';
        end if;
        -- Failed sign-ins are counted by address: the old address goes with them.
        delete from sign_in_failures f
         using user_credentials c
         where c.user_id = target_user and f.tenant_id = c.tenant_id and f.email = c.email;
        update user_credentials c set email = sign_in
         where c.user_id = target_user;
    when 'UserDeactivated' then
        update user_credentials c set active = false
         where c.user_id = target_user;
        update sessions s set revoked_at = now()
         where s.user_id = target_user and s.revoked_at is null;
    when 'UserReactivated' then
        update user_credentials c set active = true
         where c.user_id = target_user;
    when 'UserForgotten' then
        -- Failed sign-ins are counted by address: the address goes with them.
        delete from sign_in_failures f
         using user_credentials c
         where c.user_id = target_user and f.tenant_id = c.tenant_id and f.email = c.email;
        update user_credentials c set email = null, active = false
         where c.user_id = target_user;
        -- Two-factor sign-in keeps the address in its pending challenges; the user's second
        -- factor goes too (recovery codes cascade).
        delete from mfa_challenges m where m.user_id = target_user;
        delete from user_totp t where t.user_id = target_user;
        update sessions s set revoked_at = now()
         where s.user_id = target_user and s.revoked_at is null;
    else
        null;
    end case;
    return null;
end
$$;

-- The vendor signatory a user signed as is that user's personal data: the row names the user,
-- so that forgetting them erases it (`projections::SignatoryErasure`).
alter table read.contracts add column vendor_signed_by uuid;
