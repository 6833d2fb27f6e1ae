-- A draft contract abandoned before submission (`CancelContract`): status 'Cancelled' and why.
alter table read.contracts add column cancelled_reason text;
comment on column read.contracts.cancelled_reason is
    'Why a draft was abandoned (CancelContract); null unless the status is Cancelled.';
