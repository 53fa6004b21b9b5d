-- Capture installation: cdc.track(schema, table, spec) generates one trigger function per table with its key encoding,
-- excluded/masked columns and event-type rules compiled in (identifiers from the catalog via %I, config values via %L),
-- plus a keyset snapshot function (and, in logical mode for a table without masks or incidental columns, the apply
-- step's set-based capture). The spec comes from cdc.toml (built by the capture module):
--   { aggregate: 'Customer', mode: 'outbox'|'emit'|'logical', exclude: [..], mask: [..], incidental: [..],
--     bookkeeping: [..], rules: [{ op, columns?, value?, type, reason? }], document: bool }
--   (rules of this table only, in config order; document: an aggregate root whose events carry its document, so in
--   the trigger modes they go to the event store only and cdc.fold_document publishes them at commit)
-- A definition file: `create or replace` only, re-applied by `cdc migrate` when it changes (which then regenerates
-- every tracked table's functions). Changing a signature or removing a function needs a numbered migration.
--
-- aggregate.id encoding: a single-column primary key is its value as text ('42'). A composite key is the text of each
-- column in key order, each with '%' → '%25' and ':' → '%3A', joined by ':' ('7:a%3Ab' = (7, 'a:b')). Stable and
-- reversible.

-- The rule of an insert or delete: the first whose `value` (if any) equals the row's value of its column.
create or replace function cdc.rule_for(p_rules jsonb, p_image jsonb) returns jsonb language sql immutable as $$
  select r from jsonb_array_elements(p_rules) with ordinality as x(r, n)
   where not r ? 'value' or p_image->(r->'columns'->>0) = r->'value'
   order by n limit 1
$$;

-- Event type of an insert or delete: its rule's, else the default.
create or replace function cdc.rule_type(p_rules jsonb, p_image jsonb, p_default text) returns text language sql immutable as $$
  select coalesce(cdc.rule_for(p_rules, p_image)->>'type', p_default)
$$;

-- Splits the changes of one UPDATE into atomic events by the table's update rules (first match claims its columns).
-- Changes no rule claims go into one '<Aggregate>Updated' event; incidental columns (e.g. updated_at) never make an
-- event on their own and ride along with the first event. Images step through: each event's after = its before
-- plus its own changes.
create or replace function cdc.split_update(p_rules jsonb, p_changes jsonb, p_incidental text[], p_before jsonb, p_default text)
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
create or replace function cdc.image_expr(rec text, p_exclude text[], p_mask_obj text) returns text language sql immutable as $$
  select format('to_jsonb(%s)', rec)
    || case when cardinality(p_exclude) > 0 then format(' - %L::text[]', p_exclude) else '' end
    || case when p_mask_obj is not null then format(' || %L::jsonb', p_mask_obj) else '' end
$$;

-- The aggregate id (encoding above).
create or replace function cdc.key_expr(rec text, p_pk text[]) returns text language sql immutable as $$
  select case when cardinality(p_pk) = 1 then format('%s.%I::text', rec, p_pk[1])
    else 'concat_ws('':'', ' || (select string_agg(
      format('replace(replace(%s.%I::text, ''%%'', ''%%25''), '':'', ''%%3A'')', rec, c), ', ') from unnest(p_pk) c) || ')'
  end
$$;

-- TRUNCATE fires no row triggers, so on a tracked table it would silently skip history.
create or replace function cdc.refuse_truncate() returns trigger language plpgsql as $$
begin
  raise exception 'TRUNCATE of tracked table %.% is refused: it would bypass the change history', TG_TABLE_SCHEMA, TG_TABLE_NAME
    using errcode = '55000', hint = 'DELETE the rows, or untrack the table first';
end
$$;

-- The generated statements that append one event (identifiers and literals are the generator's, never user input):
-- one copy per trigger function, after the branches of INSERT/UPDATE/DELETE, because PL/pgSQL sets up the state of
-- each expression once per transaction and copy: one shared copy is set up once, not once per operation.
-- Expects v_id, v_op, v_type and v_changes, v_before, v_after (JSON text) set.
create or replace function cdc.append_sql(p_table text, p_mode text)
returns text language sql immutable as $gen$
  select format($f$
  v_index := coalesce(nullif(current_setting('cdc.tx_index', true), ''), '0')::int;
  v_x := set_config('cdc.tx_index', (v_index + 1)::text, true);
  -- the next gapless version: the row lock serializes writers of the row, the unique index answers
  select s.version + 1 into v_version from cdc.event_store s
   where s.aggregate_type = %1$L and s.aggregate_id = v_id order by s.version desc limit 1;
  if not found then v_version := 1; end if;%3$s
  v_text := cdc.envelope(v_event_id, v_type, v_op, %1$L, v_id, v_version, v_tx, v_index, v_at, v_changes, v_before, v_after);
  insert into cdc.event_store (id, aggregate_type, aggregate_id, version, type, tx_id, occurred_at, payload)
    values (v_event_id, %1$L, v_id, v_version, v_type, v_tx, v_at, v_text::jsonb);%2$s$f$,
    p_table,
    case when p_mode in ('logical', 'store') then ''
         when p_mode = 'emit' then $e$
  v_lsn := pg_logical_emit_message(true, 'cdc', v_text);$e$
    else $o$
  insert into cdc.outbox (event_id, tx_id) values (v_event_id, v_tx);
  if v_index = 0 and pg_sequence_last_value('cdc.relay_wake') = 1 then perform pg_notify('cdc_outbox', ''); end if;$o$
    end,
    -- logical mode runs in the relay's apply step: id, time and transaction of the source transaction's commit
    case when p_mode = 'logical' then $l$
  v_at := current_setting('cdc.commit_time')::timestamptz; v_tx := current_setting('cdc.tx_id')::xid8;
  v_event_id := cdc.logical_event_id(current_setting('cdc.commit_lsn')::pg_lsn, v_at, v_index);$l$
    else $t$
  v_event_id := cdc.uuidv7(); v_at := clock_timestamp(); v_tx := pg_current_xact_id();$t$ end)
$gen$;

-- A statement that locks the row of a tracked table whose aggregate id is $1 (used by cdc.emit).
create or replace function cdc.lock_row_sql(p_schema text, p_table text, p_key text[]) returns text language plpgsql stable as $$
begin
  if cardinality(p_key) = 1 then
    return format('select 1 from %I.%I where %I = $1::%s for update', p_schema, p_table, p_key[1],
      (select format_type(a.atttypid, a.atttypmod) from pg_attribute a
        where a.attrelid = format('%I.%I', p_schema, p_table)::regclass and a.attname = p_key[1]));
  end if;
  return format('select 1 from %I.%I r where %s = $1 for update', p_schema, p_table, cdc.key_expr('r', p_key));
end
$$;

-- The canonical name of a table (the envelope's aggregate type; src/tables.ts spells it the same way): the schema
-- left out for public, a part quoted only when it is not a plain lower-case identifier.
create or replace function cdc.qualified_name(p_schema text, p_table text) returns text language sql immutable as $$
  select case when p_schema = 'public' then '' else
           case when p_schema ~ '^[a-z_][a-z0-9_]*$' then p_schema else '"' || replace(p_schema, '"', '""') || '"' end || '.' end
      || case when p_table ~ '^[a-z_][a-z0-9_]*$' then p_table else '"' || replace(p_table, '"', '""') || '"' end
$$;

-- Name of a generated function: `<prefix>_<table>` for a plain public table (as always), else a readable prefix of the
-- names plus a hash of the canonical name, within PostgreSQL's 63 bytes.
create or replace function cdc.generated_name(p_prefix text, p_schema text, p_table text) returns text language sql immutable as $$
  select case when p_schema = 'public' and p_table ~ '^[a-z_][a-z0-9_]{0,50}$' then p_prefix || '_' || p_table
    else p_prefix || '_' || left(regexp_replace(lower(p_schema || '_' || p_table), '[^a-z0-9_]+', '_', 'g'), 40)
         || '_' || left(md5(cdc.qualified_name(p_schema, p_table)), 8) end
$$;

-- Whether values of a type can be compared with = (a default btree or hash operator class, through arrays and
-- domains); json, xml and the geometric types cannot.
create or replace function cdc.has_equality(p_type oid) returns boolean language sql stable as $$
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

-- The JSON text of a row image, for generated code over the record `rec`: row_to_json where nothing is left out or
-- masked (no jsonb built only to be printed again), else cdc.image_expr.
create or replace function cdc.image_text_expr(rec text, p_exclude text[], p_mask_obj text) returns text language sql immutable as $$
  select case when p_mask_obj is null and cardinality(p_exclude) = 0 then format('row_to_json(%s)::text', rec)
              else format('(%s)::text', cdc.image_expr(rec, p_exclude, p_mask_obj)) end
$$;

-- One column's entry in an UPDATE's `changes`, for generated code over the records p_new and p_old: whether it
-- changed (compared unmasked; as text where the type has no equality) and its JSON text with a leading comma
-- (values "***" when masked).
create or replace function cdc.change_sql(p_column name, p_type oid, p_masked boolean, p_new text, p_old text,
  out changed text, out fragment text) language sql stable as $$
  select format('%1$s.%3$I%4$s is distinct from %2$s.%3$I%4$s', p_new, p_old, p_column, case when cdc.has_equality(p_type) then '' else '::text' end),
         format('%L || %s || '',"after":'' || %s || ''}''', ',{"path":' || to_json(p_column::text) || ',"before":',
           case when p_masked then '''"***"''' else format('coalesce(to_json(%s.%I)::text, ''null'')', p_old, p_column) end,
           case when p_masked then '''"***"''' else format('coalesce(to_json(%s.%I)::text, ''null'')', p_new, p_column) end)
$$;

-- One column's entry in an UPDATE's changes as jsonb, for code that splits them by rules (cdc.split_update).
create or replace function cdc.change_jsonb_sql(p_column name, p_masked boolean, p_new text, p_old text) returns text
language sql immutable as $$
  select format('jsonb_build_object(''path'', %L, ''before'', %s, ''after'', %s)', p_column,
    case when p_masked then '''"***"''::jsonb' else format('to_jsonb(%s.%I)', p_old, p_column) end,
    case when p_masked then '''"***"''::jsonb' else format('to_jsonb(%s.%I)', p_new, p_column) end)
$$;

-- A split event's changes (jsonb expression p_changes) without those of the given columns (bookkeeping: in the
-- images only).
create or replace function cdc.changes_without_sql(p_changes text, p_columns text[]) returns text language sql immutable as $$
  select case when cardinality(p_columns) = 0 then p_changes
              else format('(select coalesce(jsonb_agg(c), ''[]'') from jsonb_array_elements(%s) c where not c->>''path'' = any(%L::text[]))',
                     p_changes, p_columns) end
$$;

-- The event type of an insert or delete of a row whose image (jsonb) p_image gives, by the op's rules: a constant
-- unless a rule looks at a value.
create or replace function cdc.rule_type_sql(p_rules jsonb, p_image text, p_default text) returns text language sql immutable as $$
  select case when jsonb_array_length(p_rules) = 0 then quote_literal(p_default)
              when not p_rules->0 ? 'value' then quote_literal(p_rules->0->>'type')
              else format('cdc.rule_type(%L::jsonb, %s, %L)', p_rules, p_image, p_default) end
$$;

-- The reason a rule of an insert or delete gives (null: none).
create or replace function cdc.rule_reason_sql(p_rules jsonb, p_image text) returns text language sql immutable as $$
  select case when not exists (select 1 from jsonb_array_elements(p_rules) r where r ? 'reason') then null
              when not p_rules->0 ? 'value' then quote_literal(p_rules->0->>'reason')
              else format('cdc.rule_for(%L::jsonb, %s)->>''reason''', p_rules, p_image) end
$$;

-- Primary key columns of public.<p_table> in key order (null without one; error when the table is missing).
create or replace function cdc.primary_key(p_table text) returns text[] language plpgsql stable as $$
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
create or replace function cdc.missing_columns(p_table text, p_columns text[]) returns text language sql stable as $$
  select string_agg(x, ', ') from unnest(p_columns) x
   where not exists (select 1 from pg_attribute a where a.attrelid = format('public.%I', p_table)::regclass
     and a.attname = x and a.attnum > 0 and not a.attisdropped)
$$;

-- Installs (or refreshes) capture on <p_schema>.<p_table>, named by its catalog names (never parsed or spliced:
-- identifiers reach the generated code through %I only). Idempotent. Refuses, with a message that says why, what
-- cannot be captured: a missing table, a view, a foreign table, a partition (track its parent: the row triggers of a
-- partitioned table are cloned to every partition, present and future), an unlogged or temporary table, a table in a
-- system schema, and a table with neither a primary key nor a replica identity index (nothing identifies a row's
-- history). Row images and changes are JSON text (row_to_json:
-- no jsonb built only to be printed again); tables with update rules or incidental columns split their changes as
-- jsonb (cdc.split_update) and append each event through cdc.append.
-- The generated functions run with enable_seqscan = off: a session caches the plan of a trigger's statements, and one
-- planned while cdc.event_store was small (a fresh install, or analyzed while empty) probed the version by a
-- sequential scan kept as the table grew (a 2,000-row INSERT into a freshly tracked table cost up to 16 ms per row).
-- Every statement of them is a keyed lookup or an insert; the SET clause costs below the noise (~1 µs) in a trigger.
-- The logical-mode function has none: it runs only inside cdc.logical_apply, which sets it for the whole call (a SET
-- clause there was a GUC save and restore per row, ~2% of the apply step).
create or replace function cdc.track(p_schema text, p_table text, p_spec jsonb) returns jsonb language plpgsql as $track$
declare
  v_rel oid;
  v_class record;
  v_name text := cdc.qualified_name(p_schema, p_table);
  v_key_source text := 'primary key';
  v_pk text[];
  v_pk_types text[];
  v_exclude text[] := array(select jsonb_array_elements_text(coalesce(p_spec->'exclude', '[]')));
  v_mask text[] := array(select jsonb_array_elements_text(coalesce(p_spec->'mask', '[]')));
  v_incidental text[] := array(select jsonb_array_elements_text(coalesce(p_spec->'incidental', '[]')));
  v_bookkeeping text[] := array(select jsonb_array_elements_text(coalesce(p_spec->'bookkeeping', '[]')));
  v_mode text := coalesce(p_spec->>'mode', 'outbox');
  -- where an appended event goes at once ('store': the event store only, published at commit by cdc.fold_document)
  v_publish text := case when coalesce((p_spec->>'document')::boolean, false) and v_mode <> 'logical' then 'store'
                         else coalesce(p_spec->>'mode', 'outbox') end;
  v_agg text := p_spec->>'aggregate';
  v_rules jsonb := coalesce(p_spec->'rules', '[]');
  v_rules_c jsonb; v_rules_u jsonb; v_rules_d jsonb;
  v_unknown text;
  v_mask_obj text;
  v_image_new text; v_image_old text;
  v_type_c text; v_type_d text;
  v_reason_c text; v_reason_d text;
  v_update text;
  v_body text;
  v_fn text;
  v_snap text;
  v_images_current boolean;
begin
  if v_mode not in ('outbox', 'emit', 'logical') then
    raise exception 'capture mode % is not outbox, emit or logical', v_mode using errcode = '22023';
  end if;
  if v_agg !~ '^[A-Z][A-Za-z0-9]{0,80}$' then
    raise exception 'aggregate name % is not PascalCase', v_agg using errcode = '22023';
  end if;
  if p_schema in ('pg_catalog', 'information_schema', 'cdc') or p_schema ~ '^pg_(toast|temp_|toast_temp_)' then
    raise exception 'table % is in a system schema: only the team''s own tables can be tracked', v_name using errcode = '0A000';
  end if;
  select c.oid, c.relkind, c.relpersistence, c.relispartition, c.relreplident,
         (select cdc.qualified_name(pn.nspname, p.relname) from pg_inherits i join pg_class p on p.oid = i.inhparent
            join pg_namespace pn on pn.oid = p.relnamespace where i.inhrelid = c.oid limit 1) as parent
    into v_class
    from pg_class c join pg_namespace n on n.oid = c.relnamespace
   where n.nspname = p_schema and c.relname = p_table;
  if not found then
    raise exception 'table % does not exist', v_name using errcode = '42P01',
      hint = 'name it as SQL does: schema.table, with "quotes" around mixed-case names';
  end if;
  v_rel := v_class.oid;
  if v_class.relkind in ('v', 'm') then
    raise exception '% is a view: capture needs a table, whose rows a trigger sees change', v_name using errcode = '42809',
      hint = 'track the tables the view reads';
  elsif v_class.relkind = 'f' then
    raise exception '% is a foreign table: its rows change on another server, where no trigger of this database sees them', v_name
      using errcode = '42809';
  elsif v_class.relkind not in ('r', 'p') then
    raise exception '% is not a table', v_name using errcode = '42809';
  elsif v_class.relispartition then
    raise exception '% is a partition of %: track the partitioned table, and every partition is captured under it', v_name, v_class.parent
      using errcode = '42809';
  elsif v_class.relpersistence = 'u' then
    raise exception '% is unlogged: after a crash its rows vanish without any event, so its history could not be trusted', v_name
      using errcode = '55000', hint = 'ALTER TABLE … SET LOGGED, then track it';
  elsif v_class.relpersistence = 't' then
    raise exception '% is a temporary table: it lives only as long as its session', v_name using errcode = '55000';
  end if;
  select array_agg(a.attname::text order by k.ord), array_agg(format_type(a.atttypid, a.atttypmod) order by k.ord)
    into v_pk, v_pk_types
    from pg_index i cross join unnest(i.indkey) with ordinality as k(attnum, ord)
    join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum
   where i.indrelid = v_rel and i.indisprimary;
  if v_pk is null and v_class.relreplident = 'i' then
    -- REPLICA IDENTITY USING INDEX: a unique, non-partial index on NOT NULL columns, as good a key as a primary key
    v_key_source := 'replica identity';
    select array_agg(a.attname::text order by k.ord), array_agg(format_type(a.atttypid, a.atttypmod) order by k.ord)
      into v_pk, v_pk_types
      from pg_index i cross join unnest(i.indkey) with ordinality as k(attnum, ord)
      join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum
     where i.indrelid = v_rel and i.indisreplident;
  end if;
  if v_pk is null then
    raise exception 'table % has no primary key and no replica identity index: nothing identifies a row''s history', v_name
      using errcode = '55000', hint = 'add a primary key (or ALTER TABLE … REPLICA IDENTITY USING INDEX a unique index), then track it';
  end if;
  -- function names already given to this table stay (untrack drops them by these names)
  select t.capture_function, t.snapshot_function, t.active and t.mode = 'logical' and t.spec->'mask' is not distinct from p_spec->'mask'
           and t.spec->'bookkeeping' is not distinct from p_spec->'bookkeeping' and t.spec->'incidental' is not distinct from p_spec->'incidental'
    into v_fn, v_snap, v_images_current from cdc.tracked t
   where t.schema_name = p_schema and t.table_name = p_table;
  v_fn := coalesce(v_fn, cdc.generated_name('capture', p_schema, p_table));
  v_snap := coalesce(v_snap, cdc.generated_name('snapshot', p_schema, p_table));
  select string_agg(x, ', ') into v_unknown
    from unnest(v_exclude || v_mask || v_incidental || v_bookkeeping || array(
      select jsonb_array_elements_text(r->'columns') from jsonb_array_elements(v_rules) r where r ? 'columns')) x
   where not exists (select 1 from pg_attribute a where a.attrelid = v_rel and a.attname = x and a.attnum > 0 and not a.attisdropped);
  if v_unknown is not null then
    raise exception 'capture config of table %: unknown column(s) %', v_name, v_unknown using errcode = '42703';
  end if;
  if v_exclude && v_pk or v_mask && v_pk then
    raise exception 'capture config of table %: key columns cannot be excluded or masked', v_name using errcode = '22023';
  end if;

  select coalesce(jsonb_agg(r) filter (where r->>'op' = 'c'), '[]'), coalesce(jsonb_agg(r) filter (where r->>'op' = 'u'), '[]'),
         coalesce(jsonb_agg(r) filter (where r->>'op' = 'd'), '[]')
    into v_rules_c, v_rules_u, v_rules_d from jsonb_array_elements(v_rules) r;
  v_mask_obj := (select jsonb_object_agg(m, '***') from unnest(v_mask) m)::text;
  -- JSON text of a row image; without excluded or masked columns straight from the row
  v_image_new := cdc.image_text_expr('NEW', v_exclude, v_mask_obj);
  v_image_old := cdc.image_text_expr('OLD', v_exclude, v_mask_obj);
  v_type_c := cdc.rule_type_sql(v_rules_c, 'v_after::jsonb', v_agg || 'Created');
  v_type_d := cdc.rule_type_sql(v_rules_d, 'v_before::jsonb', v_agg || 'Deleted');
  -- a rule's reason stands in for the writer's when it gave none (set for the event, then unset)
  v_reason_c := cdc.rule_reason_sql(v_rules_c, 'v_after::jsonb');
  v_reason_d := cdc.rule_reason_sql(v_rules_d, 'v_before::jsonb');

  if jsonb_array_length(v_rules_u) = 0 and cardinality(v_incidental) = 0 then
    -- UPDATE, one event: the changed columns as JSON text, compiled per column (compared unmasked, reported masked;
    -- bookkeeping columns not compared: in the images only;
    -- cdc.refresh_capture regenerates this after ALTER TABLE)
    select string_agg(format($f$
    if %s then
      v_changes := v_changes || %s;
    end if;$f$, c.changed, c.fragment), '' order by a.attnum)
      into v_update
      from pg_attribute a cross join lateral cdc.change_sql(a.attname, a.atttypid, a.attname = any(v_mask), 'NEW', 'OLD') c
     where a.attrelid = v_rel and a.attnum > 0 and not a.attisdropped and not a.attname = any(v_exclude)
       and not a.attname = any(v_bookkeeping);
    v_update := E'\n    v_changes := '''';' || v_update || format($f$
    if v_changes = '' then return null; end if;
    v_changes := '[' || substr(v_changes, 2) || ']';
    v_op := 'u'; v_type := %L;
    v_before := %s; v_after := %s;$f$, v_agg || 'Updated', v_image_old, v_image_new);
  else
    -- UPDATE split by rules (changes and images as jsonb for cdc.split_update), each event through cdc.append
    select string_agg(format($f$
    if %s then
      v_changes_j := v_changes_j || %s;
    end if;$f$, c.changed, cdc.change_jsonb_sql(a.attname, a.attname = any(v_mask), 'NEW', 'OLD')), '' order by a.attnum)
      into v_update
      from pg_attribute a cross join lateral cdc.change_sql(a.attname, a.atttypid, a.attname = any(v_mask), 'NEW', 'OLD') c
     where a.attrelid = v_rel and a.attnum > 0 and not a.attisdropped and not a.attname = any(v_exclude);
    v_update := E'\n    v_changes_j := ''[]'';' || v_update || format($f$
    if v_changes_j = '[]' then return null; end if;
    for v_split in select * from cdc.split_update(%L::jsonb, v_changes_j, %L::text[], %s, %L) loop
      perform cdc.append(%L, v_id, 'u', v_split.type, %s, v_split.before, v_split.after, null, %L);
    end loop;
    return null;$f$, v_rules_u, v_incidental || v_bookkeeping, cdc.image_expr('OLD', v_exclude, v_mask_obj), v_agg || 'Updated', v_name,
      -- bookkeeping columns ride along like incidental ones (so the images step through them), minus their changes
      cdc.changes_without_sql('v_split.changes', v_bookkeeping),
      v_publish);
  end if;

  -- logical mode: the same code as a function of (TG_OP, NEW, OLD) that the relay calls with decoded row images
  -- (sql/definitions/logical.sql); switching modes drops the other form (and first the triggers that use it)
  if v_mode = 'logical' then
    execute format('drop trigger if exists cdc_capture_ins on %I.%I', p_schema, p_table);
    execute format('drop trigger if exists cdc_capture_upd on %I.%I', p_schema, p_table);
    execute format('drop trigger if exists cdc_capture_del on %I.%I', p_schema, p_table);
    execute format('drop function if exists cdc.%I()', v_fn);
  else
    execute format('drop function if exists cdc.%I(text, %I.%I, %I.%I)', v_fn, p_schema, p_table, p_schema, p_table);
  end if;
  v_body := format($f$
create or replace function cdc.%1$I%10$s language plpgsql%15$s as $fn$
declare
  v_id text; v_op text; v_type text; v_changes text; v_before text; v_after text; v_changes_j jsonb; v_split record;
  v_reason text;
  v_index int; v_x text; v_version bigint; v_event_id uuid; v_at timestamptz; v_tx xid8; v_text text; v_lsn pg_lsn;
begin
  if TG_OP = 'INSERT' then
    v_id := %2$s;
    v_after := %3$s;
    v_op := 'c'; v_type := %4$s; v_changes := '[]';%11$s
  elsif TG_OP = 'DELETE' then
    v_id := %5$s;
    v_before := %6$s;
    v_op := 'd'; v_type := %7$s; v_changes := '[]';%12$s
  else
    v_id := %2$s;%8$s
  end if;%13$s%9$s%14$s
  return null;
end
$fn$
$f$,
    v_fn,
    cdc.key_expr('NEW', v_pk), v_image_new, v_type_c,
    cdc.key_expr('OLD', v_pk), v_image_old, v_type_d,
    v_update, cdc.append_sql(v_name, v_publish),
    case when v_mode = 'logical' then format('(tg_op text, new %I.%I, old %I.%I) returns int', p_schema, p_table, p_schema, p_table)
         else '() returns trigger' end,
    case when v_reason_c is not null then format(E'\n    v_reason := %s;', v_reason_c) else '' end,
    case when v_reason_d is not null then format(E'\n    v_reason := %s;', v_reason_d) else '' end,
    case when v_reason_c is null and v_reason_d is null then '' else $r$
  if v_reason is not null and coalesce(current_setting('cdc.reason', true), '') <> '' then v_reason := null; end if;
  if v_reason is not null then perform set_config('cdc.reason', v_reason, true); end if;$r$ end,
    case when v_reason_c is null and v_reason_d is null then '' else $r$
  if v_reason is not null then perform set_config('cdc.reason', '', true); end if;$r$ end,
    case when v_mode = 'logical' then '' else ' set enable_seqscan = off' end);
  execute v_body;
  -- logical mode, a table without masks or incidental columns: also the set-based form of its capture
  -- (sql/definitions/logical.sql)
  if v_mode = 'logical' and cardinality(v_mask || v_incidental) = 0
     and not coalesce((p_spec->>'document')::boolean, false)
     and not exists (select 1 from pg_attribute a where a.attrelid = v_rel and a.attgenerated = 's' and not a.attisdropped) then
    execute cdc.logical_bulk_source(p_schema, p_table, cdc.generated_name('bulk', p_schema, p_table), v_name, v_agg, v_pk, v_exclude,
      v_bookkeeping, v_rules_c, v_rules_u, v_rules_d);
  else
    execute format('drop function if exists cdc.%I(jsonb)', cdc.generated_name('bulk', p_schema, p_table));
  end if;

  -- Snapshot batch: the next rows after the cursor key, locked briefly so a concurrent writer's version follows.
  execute format($f$
create or replace function cdc.%1$I(p_after jsonb, p_limit int) returns table (rows int, last_key jsonb)
language plpgsql set enable_seqscan = off as $fn$
declare r record;
begin
  rows := 0;
  for r in select * from %11$I.%2$I t where p_after is null or (%3$s) > (%4$s) order by %3$s limit p_limit for update loop
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
    v_name, cdc.key_expr('r', v_pk), v_agg || 'Snapshotted', cdc.image_expr('r', v_exclude, v_mask_obj), v_mode,
    (select string_agg(format('r.%I', c), ', ') from unnest(v_pk) c), p_schema);

  if v_mode = 'logical' then
    -- no row trigger: the writer's context once per transaction, and the table in the relay's publication
    execute format('create or replace trigger cdc_capture_context before insert or update or delete on %I.%I
      for each statement execute function cdc.logical_context()', p_schema, p_table);
    execute format('create or replace trigger cdc_capture_truncate before truncate on %I.%I for each statement execute function cdc.refuse_truncate()', p_schema, p_table);
    perform cdc.logical_publish(p_spec->>'publication', p_schema, p_table);
  else
  execute format('drop trigger if exists cdc_capture_context on %I.%I', p_schema, p_table);
  execute format('create or replace trigger cdc_capture_ins after insert on %I.%I for each row execute function cdc.%I()', p_schema, p_table, v_fn);
  -- the WHEN clause skips no-op updates before any function call; it needs an equality for every column type
  -- (json, point, … have none: then the per-column comparison as text decides alone)
  execute format('create or replace trigger cdc_capture_upd after update on %I.%I for each row %s execute function cdc.%I()', p_schema, p_table,
    case when exists (select 1 from pg_attribute a where a.attrelid = v_rel and a.attnum > 0 and not a.attisdropped
                       and not cdc.has_equality(a.atttypid)) then '' else 'when (old.* is distinct from new.*)' end, v_fn);
  execute format('create or replace trigger cdc_capture_del after delete on %I.%I for each row execute function cdc.%I()', p_schema, p_table, v_fn);
  execute format('create or replace trigger cdc_capture_truncate before truncate on %I.%I for each statement execute function cdc.refuse_truncate()', p_schema, p_table);
  end if;
  insert into cdc.tracked as t (schema_name, table_name, aggregate_type, relid, key_columns, key_source, mode, spec, active,
                                capture_function, snapshot_function)
    values (p_schema, p_table, v_name, v_rel, v_pk, v_key_source, v_mode, p_spec, true, v_fn, v_snap)
    on conflict (schema_name, table_name) do update set
      relid = excluded.relid, key_columns = excluded.key_columns, key_source = excluded.key_source, mode = excluded.mode,
      spec = excluded.spec,
      -- a refresh after ALTER TABLE keeps the time it was tracked; tracking it again after untrack starts anew
      tracked_at = case when t.active then t.tracked_at else now() end, active = true, untracked_at = null;
  -- the row images the apply step keeps (cdc.logical_keeps_images) were kept for the table's masks, bookkeeping and
  -- incidental columns and mode until now: stale once one of them changed (each row's next change reads its last
  -- stored event instead)
  if not coalesce(v_images_current, false) and to_regclass('cdc.logical_images') is not null then
    delete from cdc.logical_images i where i.rel = p_schema || '.' || p_table;
  end if;
  -- the apply step's static calls follow the set of tables in logical mode (and the functions just regenerated)
  perform cdc.logical_dispatch_refresh();
  return jsonb_build_object('table', v_name, 'schema', p_schema, 'name', p_table, 'key', to_jsonb(v_pk), 'keySource', v_key_source);
end
$track$;

-- Removes capture from a table (and its root document events, if it is a root); its history stays in cdc.event_store
-- and its row in cdc.tracked stays, inactive, so the history remains readable. Idempotent: false when untracked
-- already, null when never tracked.
create or replace function cdc.untrack(p_schema text, p_table text) returns boolean language plpgsql as $$
declare
  v_row record;
  v_exists boolean := to_regclass(format('%I.%I', p_schema, p_table)) is not null;
  v_publication text;
begin
  select t.capture_function, t.snapshot_function, t.active into v_row from cdc.tracked t
   where t.schema_name = p_schema and t.table_name = p_table for update;
  if not found then return null; end if;
  if not v_row.active then return false; end if;
  v_publication := (select t.spec->>'publication' from cdc.tracked t where t.schema_name = p_schema and t.table_name = p_table);
  if v_exists then
    execute format('drop trigger if exists cdc_capture_ins on %I.%I', p_schema, p_table);
    execute format('drop trigger if exists cdc_capture_upd on %I.%I', p_schema, p_table);
    execute format('drop trigger if exists cdc_capture_del on %I.%I', p_schema, p_table);
    execute format('drop trigger if exists cdc_capture_truncate on %I.%I', p_schema, p_table);
    execute format('drop trigger if exists cdc_capture_context on %I.%I', p_schema, p_table);
    execute format('drop function if exists cdc.%I(text, %I.%I, %I.%I)', v_row.capture_function, p_schema, p_table, p_schema, p_table);
    if exists (select 1 from pg_publication_tables where pubname = v_publication and schemaname = p_schema and tablename = p_table) then
      execute format('alter publication %I drop table %I.%I', v_publication, p_schema, p_table);
    end if;
  end if;
  if p_schema = 'public' then perform cdc.untrack_root(p_table); end if;
  execute format('drop function if exists cdc.%I()', v_row.capture_function);
  execute format('drop function if exists cdc.%I(jsonb, int)', v_row.snapshot_function);
  execute format('drop function if exists cdc.%I(jsonb)', cdc.generated_name('bulk', p_schema, p_table));
  update cdc.tracked t set active = false, untracked_at = now() where t.schema_name = p_schema and t.table_name = p_table;
  perform cdc.logical_dispatch_refresh();
  return true;
end
$$;


-- Keeps generated capture code in step with the table: after ALTER TABLE on a tracked table, regenerate its trigger
-- function from the stored spec, so columns added later are captured at once.
create or replace function cdc.refresh_capture() returns event_trigger language plpgsql as $$
declare v_table record;
begin
  for v_table in
    select t.schema_name, t.table_name, t.spec from pg_event_trigger_ddl_commands() c
      join pg_class r on r.oid = c.objid join pg_namespace n on n.oid = r.relnamespace
      join cdc.tracked t on t.schema_name = n.nspname and t.table_name = r.relname and t.active
     where c.command_tag = 'ALTER TABLE'
  loop
    perform cdc.track(v_table.schema_name, v_table.table_name, v_table.spec);
  end loop;
end
$$;
drop event trigger if exists cdc_refresh_capture;
create event trigger cdc_refresh_capture on ddl_command_end when tag in ('ALTER TABLE') execute function cdc.refresh_capture();
