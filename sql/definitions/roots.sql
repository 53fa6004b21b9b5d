-- A definition file: `create or replace` only, re-applied by `cdc migrate` when it changes.

-- Aggregate roots (capture.roots). A root's document = its row image plus one array per child table (ordered by
-- the child's key), each child with a copy of its lookups (product_id → "product": { name, price }). Deferred
-- constraint triggers on the root and its children fold it in at commit, once per transaction per touched root
-- (cdc.fold_document): the root's own events of the transaction carry the document in before/after — by default — or,
-- with documentEvent, one separate '<Aggregate>DocumentChanged' follows them. A child row keeps the lookups of the
-- previous document while its own columns are unchanged, so a later product rename or price change never rewrites an
-- order's lines: they are as they were when each line was written. Spec:
--   { aggregate, mode, exclude, mask, documentEvent, children: [{ table, foreignKey, lookups: [{ column, table, columns }] }] }

-- The document with each child entry taken from the previous document where the child row's own columns (all but
-- its lookups) are unchanged. p_children: { <child table>: [lookup names] }. Null when p_doc is null.
create or replace function cdc.freeze_children(p_prev jsonb, p_doc jsonb, p_children jsonb) returns jsonb language sql immutable as $$
  select p_doc || coalesce((
    select jsonb_object_agg(t.key, coalesce((
      select jsonb_agg(coalesce((
        select p from jsonb_array_elements(case when jsonb_typeof(p_prev->t.key) = 'array' then p_prev->t.key else '[]' end) p
         where p - array(select jsonb_array_elements_text(t.value)) = f - array(select jsonb_array_elements_text(t.value))
         limit 1), f) order by n)
        from jsonb_array_elements(p_doc->t.key) with ordinality as x(f, n)), '[]'))
      from jsonb_each(p_children) t where jsonb_typeof(p_doc->t.key) = 'array'), '{}')
$$;

-- Folds root p_id's document as of this commit (p_doc: built now with fresh lookups; null when the root is gone) into
-- its history. Inline (default): the root's events of this transaction after version p_after get the child arrays
-- in before/after (the first one's before: the previous document's; the others: the new ones), the first update also
-- the changed child arrays in its changes, and are then published (in the trigger modes they were stored only,
-- cdc.track's 'store'); a transaction that changed only children appends '<Aggregate>Updated'. With
-- p_document_event: '<Aggregate>DocumentChanged' against the previous one, if anything differs.
create or replace function cdc.fold_document(p_root text, p_id text, p_doc jsonb, p_children jsonb, p_aggregate text,
  p_document_event boolean, p_after bigint, p_mode text) returns void language plpgsql set enable_seqscan = off as $$
declare
  v_tx xid8 := case when p_mode = 'logical' then current_setting('cdc.tx_id')::xid8 else pg_current_xact_id() end;
  v_type text := p_aggregate || 'DocumentChanged';
  v_first bigint;
  v_prev jsonb;
  v_doc jsonb;
  v_kids jsonb;
  v_prev_kids jsonb;
  v_changes jsonb;
  v_e record;
  v_p jsonb;
  v_n int := 0;
begin
  if p_document_event then
    select e.payload->'after' into v_prev from cdc.event_store e
     where e.aggregate_type = p_root and e.aggregate_id = p_id and e.type = v_type order by e.version desc limit 1;
    v_doc := cdc.freeze_children(v_prev, p_doc, p_children);
    select coalesce(jsonb_agg(jsonb_build_object('path', n.key, 'before', v_prev->n.key, 'after', n.value)), '[]')
      into v_changes from jsonb_each(v_doc) n where v_prev is null or n.value is distinct from v_prev->n.key;
    if v_doc is not null and v_changes <> '[]' then
      perform cdc.append(p_root, p_id, 'u', v_type, v_changes, v_prev, v_doc, null, p_mode);
    end if;
    return;
  end if;
  select e.version into v_first from cdc.event_store e
   where e.aggregate_type = p_root and e.aggregate_id = p_id and e.version > p_after and e.tx_id = v_tx
   order by e.version limit 1;
  -- the previous document: the last image before these events (or the last at all)
  select e.payload->'after' into v_prev from cdc.event_store e
   where e.aggregate_type = p_root and e.aggregate_id = p_id and (v_first is null or e.version < v_first)
     and jsonb_typeof(e.payload->'after') = 'object'
   order by e.version desc limit 1;
  v_doc := cdc.freeze_children(v_prev, p_doc, p_children);
  select jsonb_object_agg(k, v_doc->k), jsonb_object_agg(k, v_prev->k),
         jsonb_agg(jsonb_build_object('path', k, 'before', v_prev->k, 'after', v_doc->k) order by k)
           filter (where v_doc->k is distinct from v_prev->k)
    into v_kids, v_prev_kids, v_changes from jsonb_object_keys(p_children) k;
  for v_e in select e.id, e.payload from cdc.event_store e
     where e.aggregate_type = p_root and e.aggregate_id = p_id and e.version >= v_first and e.tx_id = v_tx
     order by e.version loop
    v_p := v_e.payload;
    if v_p->>'op' in ('c', 'u', 'd') then
      if jsonb_typeof(v_p->'before') = 'object' then
        v_p := jsonb_set(v_p, '{before}', (v_p->'before') || case when v_n = 0 then v_prev_kids else coalesce(v_kids, v_prev_kids) end);
      end if;
      if jsonb_typeof(v_p->'after') = 'object' then
        v_p := jsonb_set(v_p, '{after}', (v_p->'after') || coalesce(v_kids, v_prev_kids));
      end if;
      if v_n = 0 and v_p->>'op' = 'u' and v_doc is not null and v_changes is not null then
        v_p := jsonb_set(v_p, '{changes}', (v_p->'changes') || v_changes);
      end if;
      update cdc.event_store set payload = v_p where id = v_e.id;
      perform cdc.publish(v_e.id, v_tx, v_p::text, p_mode, v_n = 0);
      v_n := v_n + 1;
    end if;
  end loop;
  if v_n = 0 and v_doc is not null and v_changes is not null then
    perform cdc.append(p_root, p_id, 'u', p_aggregate || 'Updated', v_changes, v_prev, v_doc, null, p_mode);
  end if;
end
$$;

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
  v_children jsonb := '{}';
  v_document_event boolean := coalesce((p_spec->>'documentEvent')::boolean, false);
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
    v_children := v_children || jsonb_build_object(v_child->>'table', coalesce((select jsonb_agg(regexp_replace(l->>'column', '_id$', ''))
      from jsonb_array_elements(coalesce(v_child->'lookups', '[]')) l), '[]'));
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
    -- the document at commit goes to the WAL once per root per transaction (also for a deleted root: its events
    -- still get the children it had); the relay folds it in, in commit order (cdc.logical_document)
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
    continue when v_doc is null and %5$L;
    perform cdc.logical_send_context();
    perform pg_logical_emit_message(true, 'cdc.doc', jsonb_build_object('aggregate_type', %2$L, 'aggregate_id', v_id,
      'aggregate', %3$L, 'documentEvent', %5$L::boolean, 'children', %6$L::jsonb, 'after', v_doc)::text);
  end loop;
  return null;
end
$fn$
$f$, 'root_' || p_root, p_root, p_spec->>'aggregate', 'document_' || p_root, v_document_event, v_children);
  else
  execute format($f$
create or replace function cdc.%1$I() returns trigger language plpgsql as $fn$
declare
  v_ids text[];
  v_id text;
  v_last bigint;
  -- per root row: the last version folded in this transaction, and by which statement
  v_done jsonb := coalesce(nullif(current_setting('cdc.roots_done', true), ''), '{}')::jsonb;
  v_at text := statement_timestamp()::text;
begin
  v_ids := case TG_OP when 'INSERT' then array[to_jsonb(NEW)->>TG_ARGV[0]]
                      when 'DELETE' then array[to_jsonb(OLD)->>TG_ARGV[0]]
                      else array[to_jsonb(NEW)->>TG_ARGV[0], to_jsonb(OLD)->>TG_ARGV[0]] end;
  foreach v_id in array v_ids loop
    continue when v_id is null;
    -- once per root per transaction: at commit every firing is the COMMIT's; under SET CONSTRAINTS … IMMEDIATE
    -- a later statement's firing folds what came since
    continue when v_done->(%2$L || '/' || v_id)->>1 = v_at;
    -- serializes with writers of the root row, so the version follows theirs and the document sees their commit
    perform 1 from public.%5$I where %6$I = v_id::%7$s for update;
    perform cdc.fold_document(%2$L, v_id, cdc.%4$I(v_id), %9$L::jsonb, %3$L, %10$L::boolean,
      coalesce((v_done->(%2$L || '/' || v_id)->>0)::bigint, 0), %8$L);
    select e.version into v_last from cdc.event_store e where e.aggregate_type = %2$L and e.aggregate_id = v_id
     order by e.version desc limit 1;
    v_done := v_done || jsonb_build_object(%2$L || '/' || v_id, jsonb_build_array(coalesce(v_last, 0), v_at));
    perform set_config('cdc.roots_done', v_done::text, true);
  end loop;
  return null;
end
$fn$
$f$, 'root_' || p_root, p_root, p_spec->>'aggregate', 'document_' || p_root, p_root, v_pk[1], v_pk_type,
    coalesce(p_spec->>'mode', 'outbox'), v_children, v_document_event);
  end if;

  execute format('drop trigger if exists %I on public.%I', 'cdc_root_' || p_root, p_root);
  execute format('create constraint trigger %I after insert or update or delete on public.%I deferrable initially deferred
    for each row execute function cdc.%I(%L)', 'cdc_root_' || p_root, p_root, 'root_' || p_root, v_pk[1]);
  for v_child in select c from jsonb_array_elements(p_spec->'children') c loop
    execute format('drop trigger if exists %I on public.%I', 'cdc_root_' || p_root, v_child->>'table');
    execute format('create constraint trigger %I after insert or update or delete on public.%I deferrable initially deferred
      for each row execute function cdc.%I(%L)', 'cdc_root_' || p_root, v_child->>'table', 'root_' || p_root, v_child->>'foreignKey');
  end loop;
  return jsonb_build_object('root', p_root, 'documentEvent', v_document_event);
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

