-- Failed sign-ins are counted per guessing source: the client address with the tenant slug and
-- e-mail as typed. Anyone could lock anyone out when the pair alone was counted; now a
-- stranger's guesses lock only the stranger, and the real user from another address gets in.
alter table sign_in_failures add column source text not null default '';
alter table sign_in_failures drop constraint sign_in_failures_pkey;
alter table sign_in_failures add primary key (tenant_slug, email, source);
