-- A definition file: `create or replace` only, re-applied by `cdc migrate` when it changes.

-- Aggregate roots (capture.roots): one '<Aggregate>DocumentChanged' event (op 'u', aggregate = the root row, same
-- version sequence as the root's row events, after = the joined document) per transaction per touched root, built at
-- commit by deferred constraint triggers on the root and its child tables. Lookups copy the referenced row's columns
-- as they are at that commit, so a later product rename never rewrites an old order's history. A root deleted by
-- the transaction gets no document event (its row event '<Aggregate>Deleted' says it). Spec:
--   { aggregate, mode, exclude, mask, children: [{ table, foreignKey, lookups: [{ column, table, columns }] }] }
create or replace function cdc.track_root(p_root text, p_spec jsonb) returns jsonb language plpgsql as $root$
declare
  v_pk text[];
  v_pk_type text;
  v_child jsonb;
  v_lookup jsonb;
  v_parts text := '';
  v_extra text;
  v_child_pk text[];
  v_lookup_pk text[];
  v_missing text;
  v_type text := (p_spec->>'aggregate') || 'DocumentChanged';
  v_exclude text[] := array(select jsonb_array_elements_text(coalesce(p_spec->'exclude', '[]')));
  v_mask_obj text := (select jsonb_object_agg(m, '***') from jsonb_array_elements_text(coalesce(p_spec->'mask', '[]')) m)::text;
begin
  v_pk := cdc.primary_key(p_root);
  if cardinality(v_pk) <> 1 then
    raise exception 'capture root %: needs a single-column primary key', p_root using errcode = '22023';
  end if;
  select format_type(a.atttypid, a.atttypmod) into v_pk_type from pg_attribute a
   where a.attrelid = format('public.%I', p_root)::regclass and a.attname = v_pk[1];
  for v_child in select c from jsonb_array_elements(p_spec->'children') c loop
    v_child_pk := cdc.primary_key(v_child->>'table');
    v_missing := cdc.missing_columns(v_child->>'table', array[v_child->>'foreignKey']);
    if v_missing is not null then
      raise exception 'capture root %: table % has no column %', p_root, v_child->>'table', v_missing using errcode = '42703';
    end if;
    v_extra := '';
    for v_lookup in select l from jsonb_array_elements(coalesce(v_child->'lookups', '[]')) l loop
      v_lookup_pk := cdc.primary_key(v_lookup->>'table');
      v_missing := coalesce(cdc.missing_columns(v_child->>'table', array[v_lookup->>'column']),
        cdc.missing_columns(v_lookup->>'table', array(select jsonb_array_elements_text(v_lookup->'columns'))));
      if v_missing is not null or cardinality(v_lookup_pk) <> 1 then
        raise exception 'capture root %: lookup % → %: unknown column % or no single-column key', p_root,
          v_lookup->>'column', v_lookup->>'table', v_missing using errcode = '42703';
      end if;
      -- product_id → "product": { name, price }
      v_extra := v_extra || format(' || jsonb_build_object(%L, (select jsonb_build_object(%s) from public.%I x where x.%I = c.%I))',
        regexp_replace(v_lookup->>'column', '_id$', ''),
        (select string_agg(format('%L, x.%I', col, col), ', ') from jsonb_array_elements_text(v_lookup->'columns') col),
        v_lookup->>'table', v_lookup_pk[1], v_lookup->>'column');
    end loop;
    v_parts := v_parts || format(', %L, coalesce((select jsonb_agg(to_jsonb(c)%s order by %s) from public.%I c where c.%I = o.%I), ''[]'')',
      v_child->>'table', v_extra, (select string_agg(format('c.%I', k), ', ') from unnest(v_child_pk) k),
      v_child->>'table', v_child->>'foreignKey', v_pk[1]);
  end loop;

  execute format($f$
create or replace function cdc.%1$I(p_id text) returns jsonb language sql stable as $fn$
  select %2$s || jsonb_build_object(%3$s) from public.%4$I o where o.%5$I = p_id::%6$s
$fn$
$f$, 'document_' || p_root, cdc.image_expr('o', v_exclude, v_mask_obj), substr(v_parts, 3), p_root, v_pk[1], v_pk_type);

  if p_spec->>'mode' = 'logical' then
    -- the document at commit goes to the WAL once per root per transaction; the relay compares it with the
    -- previous document and appends the event in commit order (cdc.logical_document)
    execute format($f$
create or replace function cdc.%1$I() returns trigger language plpgsql as $fn$
declare
  v_ids text[];
  v_id text;
  v_doc jsonb;
  v_done text := coalesce(current_setting('cdc.logical_docs', true), '');
begin
  v_ids := case TG_OP when 'INSERT' then array[to_jsonb(NEW)->>TG_ARGV[0]]
                      when 'DELETE' then array[to_jsonb(OLD)->>TG_ARGV[0]]
                      else array[to_jsonb(NEW)->>TG_ARGV[0], to_jsonb(OLD)->>TG_ARGV[0]] end;
  foreach v_id in array v_ids loop
    continue when v_id is null or position(',' || %2$L || '/' || v_id || ',' in v_done) > 0;
    v_done := v_done || ',' || %2$L || '/' || v_id || ',';
    perform set_config('cdc.logical_docs', v_done, true);
    v_doc := cdc.%4$I(v_id);
    continue when v_doc is null;
    perform cdc.logical_send_context();
    perform pg_logical_emit_message(true, 'cdc.doc', jsonb_build_object('aggregate_type', %2$L, 'aggregate_id', v_id,
      'type', %3$L, 'after', v_doc)::text);
  end loop;
  return null;
end
$fn$
$f$, 'root_' || p_root, p_root, v_type, 'document_' || p_root);
  else
  execute format($f$
create or replace function cdc.%1$I() returns trigger language plpgsql as $fn$
declare
  v_ids text[];
  v_id text;
  v_doc jsonb;
  v_prev jsonb;
  v_changes jsonb;
begin
  v_ids := case TG_OP when 'INSERT' then array[to_jsonb(NEW)->>TG_ARGV[0]]
                      when 'DELETE' then array[to_jsonb(OLD)->>TG_ARGV[0]]
                      else array[to_jsonb(NEW)->>TG_ARGV[0], to_jsonb(OLD)->>TG_ARGV[0]] end;
  foreach v_id in array v_ids loop
    continue when v_id is null or exists (select 1 from cdc.event_store e where e.aggregate_type = %2$L
      and e.aggregate_id = v_id and e.tx_id = pg_current_xact_id() and e.type = %3$L);
    -- serializes with writers of the root row, so the version follows theirs and the document sees their commit
    perform 1 from public.%5$I where %6$I = v_id::%7$s for update;
    v_doc := cdc.%4$I(v_id);
    continue when v_doc is null;
    select e.payload->'after' into v_prev from cdc.event_store e where e.aggregate_type = %2$L and e.aggregate_id = v_id
       and e.type = %3$L order by e.version desc limit 1;
    select coalesce(jsonb_agg(jsonb_build_object('path', n.key, 'before', v_prev->n.key, 'after', n.value)), '[]')
      into v_changes from jsonb_each(v_doc) n where v_prev is null or n.value is distinct from v_prev->n.key;
    continue when v_changes = '[]';
    perform cdc.append(%2$L, v_id, 'u', %3$L, v_changes, v_prev, v_doc, null, %8$L);
  end loop;
  return null;
end
$fn$
$f$, 'root_' || p_root, p_root, v_type, 'document_' || p_root, p_root, v_pk[1], v_pk_type, coalesce(p_spec->>'mode', 'outbox'));
  end if;

  execute format('drop trigger if exists %I on public.%I', 'cdc_root_' || p_root, p_root);
  execute format('create constraint trigger %I after insert or update or delete on public.%I deferrable initially deferred
    for each row execute function cdc.%I(%L)', 'cdc_root_' || p_root, p_root, 'root_' || p_root, v_pk[1]);
  for v_child in select c from jsonb_array_elements(p_spec->'children') c loop
    execute format('drop trigger if exists %I on public.%I', 'cdc_root_' || p_root, v_child->>'table');
    execute format('create constraint trigger %I after insert or update or delete on public.%I deferrable initially deferred
      for each row execute function cdc.%I(%L)', 'cdc_root_' || p_root, v_child->>'table', 'root_' || p_root, v_child->>'foreignKey');
  end loop;
  return jsonb_build_object('root', p_root, 'type', v_type);
end
$root$;

create or replace function cdc.untrack_root(p_root text) returns void language plpgsql as $$
declare v_table text;
begin
  for v_table in select c.relname from pg_trigger t join pg_class c on c.oid = t.tgrelid
    where t.tgname = 'cdc_root_' || p_root and not t.tgisinternal loop
    execute format('drop trigger if exists %I on public.%I', 'cdc_root_' || p_root, v_table);
  end loop;
  execute format('drop function if exists cdc.%I()', 'root_' || p_root);
  execute format('drop function if exists cdc.%I(text)', 'document_' || p_root);
end
$$;

