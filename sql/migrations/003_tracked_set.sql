-- The tracked set for any table in any schema (src/tracked-set.ts reads it; every running role follows it live).
-- A row per table capture was ever installed on: its catalog names (the key), its canonical name (the envelope's
-- aggregate type: `orders`, `app.orders`, `app."LineItems"`), the key columns that identify a row's history (the
-- primary key, or the replica identity index), the capture mode, and whether capture is on: `untrack` keeps the row
-- (active = false) so the table's history stays readable. Trigger-free capture (logical mode) adds its rows here too.

-- The ALTER TABLE event trigger (cdc.refresh_capture) reads this table; it must not run while the table changes shape.
do $$ begin
  if exists (select 1 from pg_event_trigger where evtname = 'cdc_refresh_capture') then
    alter event trigger cdc_refresh_capture disable;
  end if;
end $$;

alter table cdc.tracked
  add column schema_name text not null default 'public',
  add column aggregate_type text,
  add column relid oid,
  add column key_columns text[] not null default '{}',
  add column key_source text not null default 'primary key',
  add column mode text not null default 'outbox',
  add column active boolean not null default true,
  add column untracked_at timestamptz,
  add column capture_function text,
  add column snapshot_function text;
-- Rows from before: tables of schema public with lower-case names, their functions named after them.
update cdc.tracked t set
  aggregate_type = t.table_name,
  relid = to_regclass(format('public.%I', t.table_name)),
  mode = coalesce(t.spec->>'mode', 'outbox'),
  capture_function = 'capture_' || t.table_name,
  snapshot_function = 'snapshot_' || t.table_name,
  key_columns = coalesce((
    select array_agg(a.attname::text order by k.ord)
      from pg_index i cross join unnest(i.indkey) with ordinality as k(attnum, ord)
      join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum
     where i.indrelid = to_regclass(format('public.%I', t.table_name)) and i.indisprimary), '{}');
alter table cdc.tracked
  alter column schema_name drop default,
  alter column aggregate_type set not null,
  alter column capture_function set not null,
  alter column snapshot_function set not null,
  add constraint tracked_key_source check (key_source in ('primary key', 'replica identity')),
  add constraint tracked_mode check (mode in ('outbox', 'emit', 'logical')),
  drop constraint tracked_pkey,
  add primary key (schema_name, table_name),
  add unique (aggregate_type);

-- Snapshot cursors are keyed by the canonical name (the aggregate type), which is the table name for public tables.
comment on column cdc.snapshot_cursors.table_name is 'canonical table name (aggregate type)';

-- Replaced by (schema, table) signatures in sql/definitions/track.sql.
drop function if exists cdc.track(text, jsonb);
drop function if exists cdc.untrack(text);
drop function if exists cdc.lock_row_sql(text);

do $$ begin
  if exists (select 1 from pg_event_trigger where evtname = 'cdc_refresh_capture') then
    alter event trigger cdc_refresh_capture enable;
  end if;
end $$;
