-- FerretDB 1.24 (PostgreSQL backend) pushes an `_id` filter down as jsonb containment, `_jsonb->'_id' @> $value`,
-- which the btree index it creates on `_jsonb->'_id'` cannot serve: every findOne/updateOne by _id read the whole
-- table (about 25 ms at 20k documents, 100 ms at 50k). Real MongoDB uses its _id index, so the local stack gives each
-- FerretDB collection table a GIN index that serves the containment filter, and plans FerretDB's parameterised
-- statements with their values (a generic plan would not match the index expression). Applied by stack.sh, idempotent.
create or replace function public.cdc_ferretdb_id_index() returns event_trigger language plpgsql as $$
declare
  t record;
begin
  for t in
    select c.objid from pg_event_trigger_ddl_commands() c
     where c.command_tag = 'CREATE TABLE' and c.object_type = 'table'
       and exists (select 1 from pg_attribute a where a.attrelid = c.objid and a.attname = '_jsonb' and not a.attisdropped)
  loop
    execute format('create index on %s using gin ((_jsonb -> %L) jsonb_path_ops)', t.objid::regclass, '_id');
  end loop;
end
$$;

drop event trigger if exists cdc_ferretdb_id_index;
create event trigger cdc_ferretdb_id_index on ddl_command_end when tag in ('CREATE TABLE')
  execute function public.cdc_ferretdb_id_index();

alter database ferretdb set plan_cache_mode = force_custom_plan;
