-- Cheaper capture (bench/cases/capture.ts: the per-row trigger cost of multi-row statements about halves; small
-- transactions gain less, see docs/capture.md). `cdc migrate` regenerates every tracked table's trigger function.
--
-- 1. Plain PL/pgSQL statements instead of one big CTE per event: the envelope is built by simple expressions (their
--    state is set up once per transaction) and only short INSERTs run through the executor. The CTE spent most of
--    its time initialising its long expression tree again for every row.
-- 2. The payload is written once, to cdc.event_store. cdc.outbox keeps only what orders and identifies the work
--    (seq, event_id, tx_id); the relay reads the envelope from the event store.
-- 3. No NOTIFY per transaction: a notifying transaction holds a database-wide lock from pre-commit until its commit
--    record is flushed, so notifying writers cannot share a WAL flush. The relay arms cdc.relay_wake (a sequence:
--    read without locks or snapshots, and its setval is seen at once) before it sleeps; a transaction's first event
--    notifies only while it is armed, and the relay disarms it when it wakes.

alter table cdc.outbox drop column aggregate_type, drop column aggregate_id, drop column version, drop column type,
  drop column occurred_at, drop column payload;

-- 1 = the poll relay sleeps and wants a NOTIFY; anything else (0, or never set: null) = no NOTIFY needed.
create sequence cdc.relay_wake minvalue 0 maxvalue 1 start 0;

-- The relay, before it sleeps: arm the wake-up, then return a horizon, an xid assigned after arming. A writer checks
-- the flag after its first write, so one that saw it unarmed holds a smaller xid: once no transaction older than the
-- horizon runs, every commit that did not NOTIFY is visible to the relay.
create function cdc.arm_relay_wake() returns text language sql volatile as $$
  select setval('cdc.relay_wake', 1);
  select pg_current_xact_id()::text;
$$;

-- The envelope as JSON text, in its documented key order (strings through to_json, so they are escaped). changes,
-- before and after come as JSON text. One SELECT without FROM: the planner inlines it into the caller's expression.
create function cdc.envelope(
  p_id uuid, p_type text, p_op text, p_aggregate_type text, p_aggregate_id text, p_version bigint, p_tx xid8,
  p_index int, p_at timestamptz, p_changes text, p_before text, p_after text
) returns text language sql stable as $$
  select '{"id":"' || p_id || '","type":' || to_json(p_type) || ',"op":"' || p_op || '","aggregate":{"type":'
    || to_json(p_aggregate_type) || ',"id":' || to_json(p_aggregate_id) || '},"version":' || p_version
    || ',"tx":{"id":"' || p_tx || '","index":' || p_index
    || '},"occurredAt":"' || to_char(p_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
    || '","actor":{"id":' || to_json(coalesce(nullif(current_setting('cdc.actor', true), ''), session_user::text))
    || ',"source":' || to_json(coalesce(nullif(current_setting('cdc.source', true), ''), 'sql'))
    || '},"reason":' || coalesce(to_json(nullif(current_setting('cdc.reason', true), ''))::text, 'null')
    || ',"correlationId":' || coalesce(to_json(nullif(current_setting('cdc.correlation_id', true), ''))::text, 'null')
    || ',"causationId":' || coalesce(to_json(nullif(current_setting('cdc.causation_id', true), ''))::text, 'null')
    || ',"changes":' || p_changes || ',"before":' || coalesce(p_before, 'null') || ',"after":' || coalesce(p_after, 'null')
    || ',"schema":1}'
$$;

-- The generated statements that append one event (identifiers and literals are the generator's, never user input):
-- one copy per trigger function, after the branches of INSERT/UPDATE/DELETE, because PL/pgSQL sets up the state of
-- each expression once per transaction and copy: one shared copy is set up once, not once per operation.
-- Expects v_id, v_op, v_type and v_changes, v_before, v_after (JSON text) set.
drop function cdc.append_sql(text, text, text, text, text, text, text);
create function cdc.append_sql(p_table text, p_mode text)
returns text language sql immutable as $gen$
  select format($f$
  v_index := coalesce(nullif(current_setting('cdc.tx_index', true), ''), '0')::int;
  v_x := set_config('cdc.tx_index', (v_index + 1)::text, true);
  -- the next gapless version: the row lock serializes writers of the row, the unique index answers
  select s.version + 1 into v_version from cdc.event_store s
   where s.aggregate_type = %1$L and s.aggregate_id = v_id order by s.version desc limit 1;
  if not found then v_version := 1; end if;
  v_event_id := cdc.uuidv7(); v_at := clock_timestamp(); v_tx := pg_current_xact_id();
  v_text := cdc.envelope(v_event_id, v_type, v_op, %1$L, v_id, v_version, v_tx, v_index, v_at, v_changes, v_before, v_after);
  insert into cdc.event_store (id, aggregate_type, aggregate_id, version, type, tx_id, occurred_at, payload)
    values (v_event_id, %1$L, v_id, v_version, v_type, v_tx, v_at, v_text::jsonb);%2$s$f$,
    p_table,
    case when p_mode = 'emit' then $e$
  v_lsn := pg_logical_emit_message(true, 'cdc', v_text);$e$
    else $o$
  insert into cdc.outbox (event_id, tx_id) values (v_event_id, v_tx);
  if v_index = 0 and pg_sequence_last_value('cdc.relay_wake') = 1 then perform pg_notify('cdc_outbox', ''); end if;$o$
    end)
$gen$;

-- Appends one event (cdc.emit, snapshots, root documents): the same steps as the generated triggers.
-- Callers serialize writers of one aggregate (row lock of a tracked row, or the advisory lock of cdc.emit).
create or replace function cdc.append(
  p_aggregate_type text, p_aggregate_id text, p_op text, p_type text,
  p_changes jsonb, p_before jsonb, p_after jsonb, p_data jsonb, p_mode text
) returns jsonb language plpgsql set enable_seqscan = off as $$
declare
  v_index int := coalesce(nullif(current_setting('cdc.tx_index', true), ''), '0')::int;
  v_version bigint;
  v_id uuid := cdc.uuidv7();
  v_at timestamptz := clock_timestamp();
  v_tx xid8 := pg_current_xact_id();
  v_text text;
  v_event jsonb;
begin
  perform set_config('cdc.tx_index', (v_index + 1)::text, true);
  select s.version + 1 into v_version from cdc.event_store s
   where s.aggregate_type = p_aggregate_type and s.aggregate_id = p_aggregate_id order by s.version desc limit 1;
  if not found then v_version := 1; end if;
  v_text := cdc.envelope(v_id, p_type, p_op, p_aggregate_type, p_aggregate_id, v_version, v_tx, v_index, v_at,
    p_changes::text, p_before::text, p_after::text);
  if p_op = 'm' then v_text := left(v_text, -1) || ',"data":' || coalesce(p_data::text, 'null') || '}'; end if;
  v_event := v_text::jsonb;
  insert into cdc.event_store (id, aggregate_type, aggregate_id, version, type, tx_id, occurred_at, payload)
    values (v_id, p_aggregate_type, p_aggregate_id, v_version, p_type, v_tx, v_at, v_event);
  if p_mode = 'emit' then
    perform pg_logical_emit_message(true, 'cdc', v_text);
  else
    insert into cdc.outbox (event_id, tx_id) values (v_id, v_tx);
    if v_index = 0 and pg_sequence_last_value('cdc.relay_wake') = 1 then perform pg_notify('cdc_outbox', ''); end if;
  end if;
  return v_event;
end
$$;

create or replace function cdc.trim_outbox(older_than interval) returns bigint language sql as $$
  with gone as (
    delete from cdc.outbox o using cdc.event_store e
     where e.id = o.event_id and e.occurred_at < now() - older_than
    returning 1)
  select count(*) from gone
$$;

create or replace function cdc.requeue(since timestamptz) returns bigint language sql as $$
  with queued as (
    insert into cdc.outbox (event_id, tx_id)
    select e.id, e.tx_id
      from cdc.event_store e
     where e.occurred_at >= since and not exists (select 1 from cdc.outbox o where o.event_id = e.id)
     order by e.occurred_at, e.tx_id, (e.payload->'tx'->>'index')::int
    returning 1)
  select count(*) from queued
$$;

-- Installs (or refreshes) capture on public.<p_table>: as in 002, with the event appended by the new append_sql.
-- Row images and changes are JSON text (row_to_json: no jsonb built only to be printed again); tables with update
-- rules or incidental columns split their changes as jsonb (cdc.split_update), as before.
create or replace function cdc.track_generate(p_table text, p_spec jsonb) returns jsonb language plpgsql as $track$
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
  v_image_new text; v_image_old text;
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
  -- JSON text of a row image; without excluded or masked columns straight from the row
  v_image_new := case when v_mask_obj is null and cardinality(v_exclude) = 0 then 'row_to_json(NEW)::text'
                      else format('(%s)::text', cdc.image_expr('NEW', v_exclude, v_mask_obj)) end;
  v_image_old := case when v_mask_obj is null and cardinality(v_exclude) = 0 then 'row_to_json(OLD)::text'
                      else format('(%s)::text', cdc.image_expr('OLD', v_exclude, v_mask_obj)) end;
  -- an insert/delete type is a constant unless a rule looks at a value
  v_type_c := case when jsonb_array_length(v_rules_c) = 0 then quote_literal(v_agg || 'Created')
                   when not v_rules_c->0 ? 'value' then quote_literal(v_rules_c->0->>'type')
                   else format('cdc.rule_type(%L::jsonb, v_after::jsonb, %L)', v_rules_c, v_agg || 'Created') end;
  v_type_d := case when jsonb_array_length(v_rules_d) = 0 then quote_literal(v_agg || 'Deleted')
                   when not v_rules_d->0 ? 'value' then quote_literal(v_rules_d->0->>'type')
                   else format('cdc.rule_type(%L::jsonb, v_before::jsonb, %L)', v_rules_d, v_agg || 'Deleted') end;

  if jsonb_array_length(v_rules_u) = 0 and cardinality(v_incidental) = 0 then
    -- UPDATE, one event: the changed columns as JSON text, compiled per column (compared unmasked, reported masked;
    -- cdc.refresh_capture regenerates this after ALTER TABLE)
    select string_agg(format($f$
    if NEW.%1$I%4$s is distinct from OLD.%1$I%4$s then
      v_changes := v_changes || %5$L || %2$s || ',"after":' || %3$s || '}';
    end if;$f$, a.attname,
        case when a.attname = any(v_mask) then '''"***"''' else format('coalesce(to_json(OLD.%I)::text, ''null'')', a.attname) end,
        case when a.attname = any(v_mask) then '''"***"''' else format('coalesce(to_json(NEW.%I)::text, ''null'')', a.attname) end,
        case when cdc.has_equality(a.atttypid) then '' else '::text' end,
        ',{"path":' || to_json(a.attname::text) || ',"before":'), '' order by a.attnum)
      into v_update
      from pg_attribute a where a.attrelid = v_rel and a.attnum > 0 and not a.attisdropped and not a.attname = any(v_exclude);
    v_update := E'\n    v_changes := '''';' || v_update || format($f$
    if v_changes = '' then return null; end if;
    v_changes := '[' || substr(v_changes, 2) || ']';
    v_op := 'u'; v_type := %L;
    v_before := %s; v_after := %s;$f$, v_agg || 'Updated', v_image_old, v_image_new);
  else
    -- UPDATE split by rules (changes and images as jsonb for cdc.split_update), each event through cdc.append
    select string_agg(format($f$
    if NEW.%1$I%4$s is distinct from OLD.%1$I%4$s then
      v_changes_j := v_changes_j || jsonb_build_object('path', %1$L, 'before', %2$s, 'after', %3$s);
    end if;$f$, a.attname,
        case when a.attname = any(v_mask) then '''"***"''::jsonb' else format('to_jsonb(OLD.%I)', a.attname) end,
        case when a.attname = any(v_mask) then '''"***"''::jsonb' else format('to_jsonb(NEW.%I)', a.attname) end,
        case when cdc.has_equality(a.atttypid) then '' else '::text' end), '' order by a.attnum)
      into v_update
      from pg_attribute a where a.attrelid = v_rel and a.attnum > 0 and not a.attisdropped and not a.attname = any(v_exclude);
    v_update := E'\n    v_changes_j := ''[]'';' || v_update || format($f$
    if v_changes_j = '[]' then return null; end if;
    for v_split in select * from cdc.split_update(%L::jsonb, v_changes_j, %L::text[], %s, %L) loop
      perform cdc.append(%L, v_id, 'u', v_split.type, v_split.changes, v_split.before, v_split.after, null, %L);
    end loop;
    return null;$f$, v_rules_u, v_incidental, cdc.image_expr('OLD', v_exclude, v_mask_obj), v_agg || 'Updated', p_table, v_mode);
  end if;

  v_body := format($f$
create or replace function cdc.%1$I() returns trigger language plpgsql as $fn$
declare
  v_id text; v_op text; v_type text; v_changes text; v_before text; v_after text; v_changes_j jsonb; v_split record;
  v_index int; v_x text; v_version bigint; v_event_id uuid; v_at timestamptz; v_tx xid8; v_text text; v_lsn pg_lsn;
begin
  if TG_OP = 'INSERT' then
    v_id := %2$s;
    v_after := %3$s;
    v_op := 'c'; v_type := %4$s; v_changes := '[]';
  elsif TG_OP = 'DELETE' then
    v_id := %5$s;
    v_before := %6$s;
    v_op := 'd'; v_type := %7$s; v_changes := '[]';
  else
    v_id := %2$s;%8$s
  end if;%9$s
  return null;
end
$fn$
$f$,
    v_fn,
    cdc.key_expr('NEW', v_pk), v_image_new, v_type_c,
    cdc.key_expr('OLD', v_pk), v_image_old, v_type_d,
    v_update, cdc.append_sql(p_table, v_mode));
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
