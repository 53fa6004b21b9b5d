-- Capture installation: cdc.track(table, spec) generates one trigger function per table with its key encoding,
-- excluded/masked columns and event-type rules compiled in (identifiers from the catalog via %I, config values via %L),
-- plus a keyset snapshot function. The spec comes from cdc.toml (src/capture/spec.ts):
--   { aggregate: 'Customer', mode: 'outbox'|'emit', exclude: [..], mask: [..], incidental: [..],
--     rules: [{ op, columns?, value?, type }] }   (rules of this table only, in config order)

-- Event type of an insert or delete: the first rule whose `value` (if any) equals the row's value of its column.
create function cdc.rule_type(p_rules jsonb, p_image jsonb, p_default text) returns text language sql immutable as $$
  select coalesce((
    select r->>'type' from jsonb_array_elements(p_rules) with ordinality as x(r, n)
     where not r ? 'value' or p_image->(r->'columns'->>0) = r->'value'
     order by n limit 1), p_default)
$$;

-- Splits the changes of one UPDATE into atomic events by the table's update rules (first match claims its columns).
-- Changes no rule claims go into one '<Aggregate>Updated' event; incidental columns (e.g. updated_at) never make an
-- event on their own and ride along with the first event. Images step through: each event's after = its before
-- plus its own changes.
create function cdc.split_update(p_rules jsonb, p_changes jsonb, p_incidental text[], p_before jsonb, p_default text)
returns table (type text, changes jsonb, before jsonb, after jsonb) language plpgsql immutable as $$
declare
  v_rule jsonb;
  v_left jsonb := '[]';
  v_ride jsonb := '[]';
  v_mine jsonb;
  v_events jsonb := '[]';
  v_cur jsonb := p_before;
  v_next jsonb;
  i int := 0;
begin
  select coalesce(jsonb_agg(c) filter (where not c->>'path' = any(p_incidental)), '[]'),
         coalesce(jsonb_agg(c) filter (where c->>'path' = any(p_incidental)), '[]')
    into v_left, v_ride from jsonb_array_elements(p_changes) c;
  if jsonb_array_length(v_left) = 0 then return; end if;
  for v_rule in select r from jsonb_array_elements(p_rules) r loop
    exit when jsonb_array_length(v_left) = 0;
    if not v_rule ? 'columns' then
      v_mine := v_left;
    else
      select coalesce(jsonb_agg(c), '[]') into v_mine from jsonb_array_elements(v_left) c
       where v_rule->'columns' ? (c->>'path');
      if v_rule ? 'value' and not exists (
        select 1 from jsonb_array_elements(v_mine) c
         where c->>'path' = v_rule->'columns'->>0 and c->'after' = v_rule->'value') then
        continue;
      end if;
    end if;
    continue when jsonb_array_length(v_mine) = 0;
    v_events := v_events || jsonb_build_array(jsonb_build_object('type', v_rule->>'type', 'changes', v_mine));
    select coalesce(jsonb_agg(c), '[]') into v_left from jsonb_array_elements(v_left) c where not v_mine @> jsonb_build_array(c);
  end loop;
  if jsonb_array_length(v_left) > 0 then
    v_events := v_events || jsonb_build_array(jsonb_build_object('type', p_default, 'changes', v_left));
  end if;
  v_events := jsonb_set(v_events, '{0,changes}', (v_events->0->'changes') || v_ride);
  for i in 0 .. jsonb_array_length(v_events) - 1 loop
    select v_cur || coalesce(jsonb_object_agg(c->>'path', c->'after'), '{}') into v_next
      from jsonb_array_elements(v_events->i->'changes') c;
    type := v_events->i->>'type'; changes := v_events->i->'changes'; before := v_cur; after := v_next;
    return next;
    v_cur := v_next;
  end loop;
end
$$;

-- Generated-code fragments. `rec` is a record variable name chosen by cdc.track (NEW, OLD, r), never user input.
-- The row image: to_jsonb of the row minus excluded columns, masked columns replaced by "***".
create function cdc.image_expr(rec text, p_exclude text[], p_mask_obj text) returns text language sql immutable as $$
  select format('to_jsonb(%s)', rec)
    || case when cardinality(p_exclude) > 0 then format(' - %L::text[]', p_exclude) else '' end
    || case when p_mask_obj is not null then format(' || %L::jsonb', p_mask_obj) else '' end
$$;

-- The aggregate id (encoding documented in 001_cdc_core.sql).
create function cdc.key_expr(rec text, p_pk text[]) returns text language sql immutable as $$
  select case when cardinality(p_pk) = 1 then format('%s.%I::text', rec, p_pk[1])
    else 'concat_ws('':'', ' || (select string_agg(
      format('replace(replace(%s.%I::text, ''%%'', ''%%25''), '':'', ''%%3A'')', rec, c), ', ') from unnest(p_pk) c) || ')'
  end
$$;

-- TRUNCATE fires no row triggers, so on a tracked table it would silently skip history.
create function cdc.refuse_truncate() returns trigger language plpgsql as $$
begin
  raise exception 'TRUNCATE of tracked table %.% is refused: it would bypass the change history', TG_TABLE_SCHEMA, TG_TABLE_NAME
    using errcode = '55000', hint = 'DELETE the rows, or untrack the table first';
end
$$;

-- The generated code that appends one event inside a capture trigger function: one statement computes the next
-- version from the unique index, builds the envelope and writes event store + outbox row (or the WAL message), so a
-- row change costs one SPI round instead of a call chain. Expects the variables v_id (aggregate id), v_index, v_x.
create function cdc.append_sql(p_table text, p_op text, p_type text, p_changes text, p_before text, p_after text, p_mode text)
returns text language sql immutable as $gen$
  select format($f$
    v_index := coalesce(nullif(current_setting('cdc.tx_index', true), ''), '0')::int;
    v_x := set_config('cdc.tx_index', (v_index + 1)::text, true);
    with e as (
      select x.id, x.at, x.tx, x.v, x.type, jsonb_build_object(
        'id', x.id, 'type', x.type, 'op', %2$L,
        'aggregate', jsonb_build_object('type', %1$L, 'id', v_id),
        'version', x.v,
        'tx', jsonb_build_object('id', x.tx::text, 'index', v_index),
        'occurredAt', to_char(x.at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        'actor', jsonb_build_object('id', coalesce(nullif(current_setting('cdc.actor', true), ''), session_user::text),
                                    'source', coalesce(nullif(current_setting('cdc.source', true), ''), 'sql')),
        'reason', nullif(current_setting('cdc.reason', true), ''),
        'correlationId', nullif(current_setting('cdc.correlation_id', true), ''),
        'causationId', nullif(current_setting('cdc.causation_id', true), ''),
        'changes', %4$s, 'before', %5$s, 'after', %6$s, 'schema', 1) as payload
      from (select cdc.uuidv7() as id, clock_timestamp() as at, pg_current_xact_id() as tx, %3$s as type,
              coalesce((select max(s.version) from cdc.event_store s where s.aggregate_type = %1$L and s.aggregate_id = v_id), 0) + 1 as v) x
    ), stored as (
      insert into cdc.event_store (id, aggregate_type, aggregate_id, version, type, tx_id, occurred_at, payload)
      select id, %1$L, v_id, v, type, tx, at, payload from e
    )
    %7$s$f$,
    p_table, p_op, p_type, p_changes, p_before, p_after,
    case when p_mode = 'emit' then
      'select pg_logical_emit_message(true, ''cdc'', payload::text) into v_x from e;'
    else
      'insert into cdc.outbox (event_id, tx_id, aggregate_type, aggregate_id, version, type, occurred_at, payload)
    select id, tx, ' || quote_literal(p_table) || ', v_id, v, type, at, payload from e;
    if v_index = 0 then perform pg_notify(''cdc_outbox'', ''''); end if;'
    end)
$gen$;

-- A statement that locks the row of public.<p_table> whose aggregate id is $1 (used by cdc.emit).
create function cdc.lock_row_sql(p_table text) returns text language plpgsql stable as $$
declare v_pk text[] := cdc.primary_key(p_table);
begin
  if cardinality(v_pk) = 1 then
    return format('select 1 from public.%I where %I = $1::%s for update', p_table, v_pk[1],
      (select format_type(a.atttypid, a.atttypmod) from pg_attribute a
        where a.attrelid = format('public.%I', p_table)::regclass and a.attname = v_pk[1]));
  end if;
  return format('select 1 from public.%I r where %s = $1 for update', p_table, cdc.key_expr('r', v_pk));
end
$$;

-- Whether values of a type can be compared with = (a default btree or hash operator class, through arrays and
-- domains); json, xml and the geometric types cannot.
create function cdc.has_equality(p_type oid) returns boolean language sql stable as $$
  with recursive base(t) as (
    select p_type
    union all
    select case when ty.typelem <> 0 and ty.typcategory = 'A' then ty.typelem else ty.typbasetype end
      from base join pg_type ty on ty.oid = base.t
     where (ty.typelem <> 0 and ty.typcategory = 'A') or ty.typtype = 'd')
  select bool_and(exists (select 1 from pg_opclass oc join pg_am am on am.oid = oc.opcmethod
                           where am.amname in ('btree', 'hash') and oc.opcdefault
                             and (oc.opcintype = b.t or oc.opcintype = 'anyenum'::regtype and ty.typtype = 'e')))
    from base b join pg_type ty on ty.oid = b.t
   where ty.typtype <> 'd' and not (ty.typelem <> 0 and ty.typcategory = 'A')
$$;

-- Installs (or refreshes) capture on public.<p_table>. Idempotent.
create function cdc.track(p_table text, p_spec jsonb) returns jsonb language plpgsql as $track$
declare
  v_rel oid;
  v_pk text[];
  v_pk_types text[];
  v_exclude text[] := array(select jsonb_array_elements_text(coalesce(p_spec->'exclude', '[]')));
  v_mask text[] := array(select jsonb_array_elements_text(coalesce(p_spec->'mask', '[]')));
  v_incidental text[] := array(select jsonb_array_elements_text(coalesce(p_spec->'incidental', '[]')));
  v_mode text := coalesce(p_spec->>'mode', 'outbox');
  v_agg text := p_spec->>'aggregate';
  v_rules jsonb := coalesce(p_spec->'rules', '[]');
  v_rules_c jsonb; v_rules_u jsonb; v_rules_d jsonb;
  v_unknown text;
  v_mask_obj text;
  v_type_c text; v_type_d text;
  v_update text;
  v_body text;
  v_fn text := 'capture_' || p_table;
  v_snap text := 'snapshot_' || p_table;
begin
  if length(p_table) > 54 then
    raise exception 'table name % is too long for capture (at most 54 characters)', p_table using errcode = '22023';
  end if;
  if v_mode not in ('outbox', 'emit') then
    raise exception 'capture mode % is not outbox or emit', v_mode using errcode = '22023';
  end if;
  if v_agg !~ '^[A-Z][A-Za-z0-9]{0,80}$' then
    raise exception 'aggregate name % is not PascalCase', v_agg using errcode = '22023';
  end if;
  select c.oid into v_rel from pg_class c join pg_namespace n on n.oid = c.relnamespace
   where n.nspname = 'public' and c.relname = p_table and c.relkind in ('r', 'p');
  if v_rel is null then
    raise exception 'table public.% does not exist', p_table using errcode = '42P01';
  end if;
  select array_agg(a.attname::text order by k.ord), array_agg(format_type(a.atttypid, a.atttypmod) order by k.ord)
    into v_pk, v_pk_types
    from pg_index i cross join unnest(i.indkey) with ordinality as k(attnum, ord)
    join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum
   where i.indrelid = v_rel and i.indisprimary;
  if v_pk is null then
    raise exception 'table public.% has no primary key: capture needs one to identify each row''s history', p_table
      using errcode = '55000', hint = 'add a primary key, then track the table again';
  end if;
  select string_agg(x, ', ') into v_unknown
    from unnest(v_exclude || v_mask || v_incidental || array(
      select jsonb_array_elements_text(r->'columns') from jsonb_array_elements(v_rules) r where r ? 'columns')) x
   where not exists (select 1 from pg_attribute a where a.attrelid = v_rel and a.attname = x and a.attnum > 0 and not a.attisdropped);
  if v_unknown is not null then
    raise exception 'capture config of table %: unknown column(s) %', p_table, v_unknown using errcode = '42703';
  end if;
  if v_exclude && v_pk or v_mask && v_pk then
    raise exception 'capture config of table %: primary key columns cannot be excluded or masked', p_table using errcode = '22023';
  end if;

  select coalesce(jsonb_agg(r) filter (where r->>'op' = 'c'), '[]'), coalesce(jsonb_agg(r) filter (where r->>'op' = 'u'), '[]'),
         coalesce(jsonb_agg(r) filter (where r->>'op' = 'd'), '[]')
    into v_rules_c, v_rules_u, v_rules_d from jsonb_array_elements(v_rules) r;
  v_mask_obj := (select jsonb_object_agg(m, '***') from unnest(v_mask) m)::text;
  v_type_c := case when jsonb_array_length(v_rules_c) = 0 then quote_literal(v_agg || 'Created')
                   else format('cdc.rule_type(%L::jsonb, v_after, %L)', v_rules_c, v_agg || 'Created') end;
  v_type_d := case when jsonb_array_length(v_rules_d) = 0 then quote_literal(v_agg || 'Deleted')
                   else format('cdc.rule_type(%L::jsonb, v_before, %L)', v_rules_d, v_agg || 'Deleted') end;

  -- UPDATE: the changed columns, compiled per column (compared unmasked, reported masked; cdc.refresh_capture
  -- regenerates this after ALTER TABLE), then one event or the rule split.
  select string_agg(format($f$
    if NEW.%1$I%4$s is distinct from OLD.%1$I%4$s then
      v_changes := v_changes || jsonb_build_object('path', %1$L, 'before', %2$s, 'after', %3$s);
    end if;$f$, a.attname,
      case when a.attname = any(v_mask) then '''"***"''::jsonb' else format('to_jsonb(OLD.%I)', a.attname) end,
      case when a.attname = any(v_mask) then '''"***"''::jsonb' else format('to_jsonb(NEW.%I)', a.attname) end,
      case when cdc.has_equality(a.atttypid) then '' else '::text' end), '' order by a.attnum)
    into v_update
    from pg_attribute a where a.attrelid = v_rel and a.attnum > 0 and not a.attisdropped and not a.attname = any(v_exclude);
  v_update := E'\n    v_changes := ''[]'';' || v_update || format($f$
    if v_changes = '[]' then return null; end if;
    v_before := %1$s; v_after := %2$s;$f$,
    cdc.image_expr('OLD', v_exclude, v_mask_obj), cdc.image_expr('NEW', v_exclude, v_mask_obj));
  if jsonb_array_length(v_rules_u) = 0 and cardinality(v_incidental) = 0 then
    v_update := v_update || cdc.append_sql(p_table, 'u', quote_literal(v_agg || 'Updated'), 'v_changes', 'v_before', 'v_after', v_mode);
  else
    v_update := v_update || format($f$
    for v_event in select * from cdc.split_update(%L::jsonb, v_changes, %L::text[], v_before, %L) loop%s
    end loop;$f$, v_rules_u, v_incidental, v_agg || 'Updated',
      cdc.append_sql(p_table, 'u', 'v_event.type', 'v_event.changes', 'v_event.before', 'v_event.after', v_mode));
  end if;

  v_body := format($f$
create or replace function cdc.%1$I() returns trigger language plpgsql as $fn$
declare
  v_before jsonb; v_after jsonb; v_changes jsonb; v_id text; v_event record; v_index int; v_x text;
begin
  if TG_OP = 'INSERT' then
    v_id := %2$s;
    v_after := %3$s;%4$s
  elsif TG_OP = 'DELETE' then
    v_id := %5$s;
    v_before := %6$s;%7$s
  else
    v_id := %2$s;%8$s
  end if;
  return null;
end
$fn$
$f$,
    v_fn,
    cdc.key_expr('NEW', v_pk), cdc.image_expr('NEW', v_exclude, v_mask_obj),
    cdc.append_sql(p_table, 'c', v_type_c, '''[]''::jsonb', 'null::jsonb', 'v_after', v_mode),
    cdc.key_expr('OLD', v_pk), cdc.image_expr('OLD', v_exclude, v_mask_obj),
    cdc.append_sql(p_table, 'd', v_type_d, '''[]''::jsonb', 'v_before', 'null::jsonb', v_mode),
    v_update);
  execute v_body;

  -- Snapshot batch: the next rows after the cursor key, locked briefly so a concurrent writer's version follows.
  execute format($f$
create or replace function cdc.%1$I(p_after jsonb, p_limit int) returns table (rows int, last_key jsonb)
language plpgsql as $fn$
declare r record;
begin
  rows := 0;
  for r in select * from public.%2$I t where p_after is null or (%3$s) > (%4$s) order by %3$s limit p_limit for update loop
    perform cdc.append(%5$L, %6$s, 'r', %7$L, '[]'::jsonb, null, %8$s, null, %9$L);
    rows := rows + 1;
    last_key := jsonb_build_array(%10$s);
  end loop;
  return next;
end
$fn$
$f$,
    v_snap, p_table,
    (select string_agg(format('t.%I', c), ', ') from unnest(v_pk) c),
    (select string_agg(format('(p_after->>%s)::%s', o - 1, ty), ', ') from unnest(v_pk_types) with ordinality as x(ty, o)),
    p_table, cdc.key_expr('r', v_pk), v_agg || 'Snapshotted', cdc.image_expr('r', v_exclude, v_mask_obj), v_mode,
    (select string_agg(format('r.%I', c), ', ') from unnest(v_pk) c));

  execute format('create or replace trigger cdc_capture_ins after insert on public.%I for each row execute function cdc.%I()', p_table, v_fn);
  -- the WHEN clause skips no-op updates before any function call; it needs an equality for every column type
  -- (json, point, … have none: then the per-column comparison as text decides alone)
  execute format('create or replace trigger cdc_capture_upd after update on public.%I for each row %s execute function cdc.%I()', p_table,
    case when exists (select 1 from pg_attribute a where a.attrelid = v_rel and a.attnum > 0 and not a.attisdropped
                       and not cdc.has_equality(a.atttypid)) then '' else 'when (old.* is distinct from new.*)' end, v_fn);
  execute format('create or replace trigger cdc_capture_del after delete on public.%I for each row execute function cdc.%I()', p_table, v_fn);
  execute format('create or replace trigger cdc_capture_truncate before truncate on public.%I for each statement execute function cdc.refuse_truncate()', p_table);
  insert into cdc.tracked (table_name, spec) values (p_table, p_spec)
    on conflict (table_name) do update set spec = excluded.spec, tracked_at = now();
  return jsonb_build_object('table', p_table, 'primaryKey', to_jsonb(v_pk));
end
$track$;

-- Removes capture from a table (and its root document events, if it is a root); its history stays in
-- cdc.event_store. Idempotent.
create function cdc.untrack(p_table text) returns boolean language plpgsql as $$
declare v_exists boolean := to_regclass(format('public.%I', p_table)) is not null;
begin
  if v_exists then
    execute format('drop trigger if exists cdc_capture_ins on public.%I', p_table);
    execute format('drop trigger if exists cdc_capture_upd on public.%I', p_table);
    execute format('drop trigger if exists cdc_capture_del on public.%I', p_table);
    execute format('drop trigger if exists cdc_capture_truncate on public.%I', p_table);
  end if;
  perform cdc.untrack_root(p_table);
  execute format('drop function if exists cdc.%I()', 'capture_' || p_table);
  execute format('drop function if exists cdc.%I(jsonb, int)', 'snapshot_' || p_table);
  delete from cdc.tracked where table_name = p_table;
  return found;
end
$$;

-- Aggregate roots (capture.roots): one '<Aggregate>DocumentChanged' event (op 'u', aggregate = the root row, same
-- version sequence as the root's row events, after = the joined document) per transaction per touched root, built at
-- commit by deferred constraint triggers on the root and its child tables. Lookups copy the referenced row's columns
-- as they are at that commit, so a later product rename never rewrites an old order's history. A root deleted by
-- the transaction gets no document event (its row event '<Aggregate>Deleted' says it). Spec:
--   { aggregate, mode, exclude, mask, children: [{ table, foreignKey, lookups: [{ column, table, columns }] }] }
create function cdc.track_root(p_root text, p_spec jsonb) returns jsonb language plpgsql as $root$
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

-- Primary key columns of public.<p_table> in key order (null without one; error when the table is missing).
create function cdc.primary_key(p_table text) returns text[] language plpgsql stable as $$
declare v_rel oid;
begin
  select c.oid into v_rel from pg_class c join pg_namespace n on n.oid = c.relnamespace
   where n.nspname = 'public' and c.relname = p_table and c.relkind in ('r', 'p');
  if v_rel is null then
    raise exception 'table public.% does not exist', p_table using errcode = '42P01';
  end if;
  return (select array_agg(a.attname::text order by k.ord)
    from pg_index i cross join unnest(i.indkey) with ordinality as k(attnum, ord)
    join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum
   where i.indrelid = v_rel and i.indisprimary);
end
$$;

-- The first of p_columns that public.<p_table> does not have, or null.
create function cdc.missing_columns(p_table text, p_columns text[]) returns text language sql stable as $$
  select string_agg(x, ', ') from unnest(p_columns) x
   where not exists (select 1 from pg_attribute a where a.attrelid = format('public.%I', p_table)::regclass
     and a.attname = x and a.attnum > 0 and not a.attisdropped)
$$;

-- Removes the root triggers of p_root (from the root and all tables) and its generated functions.
create function cdc.untrack_root(p_root text) returns void language plpgsql as $$
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

-- Keeps generated capture code in step with the table: after ALTER TABLE on a tracked table, regenerate its trigger
-- function from the stored spec, so columns added later are captured at once.
create function cdc.refresh_capture() returns event_trigger language plpgsql as $$
declare v_table text;
begin
  for v_table in
    select t.table_name from pg_event_trigger_ddl_commands() c
      join pg_class r on r.oid = c.objid join pg_namespace n on n.oid = r.relnamespace
      join cdc.tracked t on t.table_name = r.relname
     where c.command_tag = 'ALTER TABLE' and n.nspname = 'public'
  loop
    perform cdc.track(v_table, (select spec from cdc.tracked where table_name = v_table));
  end loop;
end
$$;
create event trigger cdc_refresh_capture on ddl_command_end when tag in ('ALTER TABLE') execute function cdc.refresh_capture();
