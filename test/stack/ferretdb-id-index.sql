-- FerretDB 1.24 (PostgreSQL backend) pushes a filter down only as top-level equality, `_jsonb->'field' @> $value`
-- (jsonb containment), which the btree indexes it creates for createIndex cannot serve: every such read scanned the
-- whole table (an `_id` lookup ~25 ms at 20k documents; one aggregate's history 3.2 s at 20k, 18 s at 141k). Real
-- MongoDB uses its indexes, so the local stack gives FerretDB matching GIN indexes that serve the containment filter:
--   * every collection table: on `_id`;
--   * every index FerretDB creates whose leading key is a top-level field: on that field (so `createIndex({aggKey: 1,
--     version: 1})` also makes `{aggKey: …}` filters index-served). Dotted leading keys get none: FerretDB never
--     pushes them down.
-- The GIN indexes are built without GIN's "fast update": with it, new entries wait in a pending list that every
-- search reads in full until a vacuum merges it (up to gin_pending_list_limit, 4 MB: measured 248 pages and 42 ms
-- for one aggregate's lookup after 100k inserts, 0.07 ms once merged), so a read would slow down with the recent
-- writes and depend on when autovacuum last ran. Without it every insert goes into the tree and each lookup reads a
-- few pages at any collection size (the inserts pay a little more).
-- It also plans FerretDB's parameterised statements with their values (a generic plan would not match the index
-- expression). Applied by stack.sh to FerretDB's backend database, idempotent.

-- The GIN index serving FerretDB's pushdown for the leading key of one of its btree indexes, if that key is a
-- top-level field other than `_id` and no such GIN index exists yet.
create or replace function public.cdc_ferretdb_gin_for(idx oid) returns void language plpgsql as $$
declare
  tbl oid;
  field text;
begin
  select i.indrelid, replace(m[1], '''''', '''') into tbl, field
    from pg_index i
    join pg_class ic on ic.oid = i.indexrelid
    join pg_am am on am.oid = ic.relam and am.amname = 'btree'
    join pg_attribute a on a.attrelid = i.indrelid and a.attname = '_jsonb' and not a.attisdropped,
         regexp_match(pg_get_indexdef(i.indexrelid, 1, true), '^\(_jsonb -> ''((?:[^'']|'''')+)''::text\)$') m
   where i.indexrelid = idx;
  if field is null or field = '_id' then
    return;
  end if;
  if not exists (select 1 from pg_index i
                   join pg_class ic on ic.oid = i.indexrelid
                   join pg_am am on am.oid = ic.relam and am.amname = 'gin'
                  where i.indrelid = tbl and pg_get_indexdef(i.indexrelid, 1, true) = format('(_jsonb -> %L::text)', field)) then
    execute format('create index on %s using gin ((_jsonb -> %L) jsonb_path_ops) with (fastupdate = off)', tbl::regclass, field);
  end if;
end
$$;

create or replace function public.cdc_ferretdb_id_index() returns event_trigger language plpgsql as $$
declare
  t record;
begin
  for t in
    select c.objid, c.command_tag from pg_event_trigger_ddl_commands() c
     where (c.command_tag = 'CREATE TABLE' and c.object_type = 'table') or (c.command_tag = 'CREATE INDEX' and c.object_type = 'index')
  loop
    if t.command_tag = 'CREATE INDEX' then
      perform public.cdc_ferretdb_gin_for(t.objid);
    elsif exists (select 1 from pg_attribute a where a.attrelid = t.objid and a.attname = '_jsonb' and not a.attisdropped) then
      execute format('create index on %s using gin ((_jsonb -> %L) jsonb_path_ops) with (fastupdate = off)', t.objid::regclass, '_id');
    end if;
  end loop;
end
$$;

drop event trigger if exists cdc_ferretdb_id_index;
create event trigger cdc_ferretdb_id_index on ddl_command_end when tag in ('CREATE TABLE', 'CREATE INDEX')
  execute function public.cdc_ferretdb_id_index();

-- Indexes that existed before this file was applied (a stack from an older checkout) get theirs now.
do $$
declare
  idx oid;
begin
  for idx in select i.indexrelid from pg_index i join pg_class c on c.oid = i.indrelid
              join pg_namespace n on n.oid = c.relnamespace
             where n.nspname not in ('pg_catalog', 'information_schema', 'public')
  loop
    perform public.cdc_ferretdb_gin_for(idx);
  end loop;
end
$$;

-- GIN indexes made with fast update by an older version of this file: turned off, and their pending lists merged.
do $$
declare
  idx regclass;
begin
  for idx in select i.indexrelid::regclass from pg_index i join pg_class ic on ic.oid = i.indexrelid
               join pg_am am on am.oid = ic.relam and am.amname = 'gin'
               join pg_namespace n on n.oid = ic.relnamespace
              where n.nspname not in ('pg_catalog', 'information_schema', 'public')
                and pg_get_indexdef(i.indexrelid, 1, true) like '(_jsonb -> %'
                and not coalesce(ic.reloptions @> array['fastupdate=off'], false)
  loop
    execute format('alter index %s set (fastupdate = off)', idx);
    perform gin_clean_pending_list(idx);
  end loop;
end
$$;

alter database ferretdb set plan_cache_mode = force_custom_plan;
