-- Logical capture (capture.mode = 'logical', docs/logical.md): no row trigger on tracked tables. The relay decodes
-- their row changes from the WAL (pgoutput, persistent slot, a publication over the tracked tables) and runs the same
-- generated capture code the triggers run (cdc.track generates it as cdc.capture_<table>(tg_op, new, old)) with the
-- row images it decoded, inside its own transaction (cdc.logical_apply), off the write path. What the writing
-- transaction still does: a BEFORE … FOR EACH STATEMENT trigger sends its who/why once (again only when it changed)
-- as one transactional logical message ('cdc.ctx'); cdc.append (cdc.emit, snapshots) and root documents send their
-- request as a message ('cdc.append', 'cdc.doc') for the relay to append in commit order.
-- A definition file: `create or replace` only (and the generated cdc.logical_capture made anew at its end), re-applied by
-- `cdc migrate` when it changes.

-- Event id of the index-th event of the source transaction committed at p_lsn: UUIDv7-shaped (commit time in
-- milliseconds, version 7, RFC 9562 variant) with the 74 other bits from md5(lsn/index), so every replay derives the
-- same id.
create or replace function cdc.logical_event_id(p_lsn pg_lsn, p_at timestamptz, p_index int) returns uuid
language plpgsql immutable as $$
-- PL/pgSQL, not SQL: a SQL function with a FROM clause is not inlined and is set up again on every call, which made
-- id derivation a third of the relay's apply time.
declare
  h bytea := decode(md5(p_lsn::text || '/' || p_index), 'hex');
begin
  return encode(substr(int8send(floor(extract(epoch from p_at) * 1000)::bigint), 3, 6)
    || set_byte(set_byte(substr(h, 1, 10), 0, 112 | (get_byte(h, 0) & 15)), 2, 128 | (get_byte(h, 2) & 63)), 'hex')::uuid;
end
$$;

-- The writer's who/why as one transactional message, the first time in a transaction and again only when it changed
-- (the relay applies the latest one before each change): [xid8, actor, source, reason, correlationId, causationId],
-- actor and source already resolved (database user, 'sql').
create or replace function cdc.logical_send_context() returns void language plpgsql as $$
declare
  v_ctx text := json_build_array(pg_current_xact_id()::text,
    coalesce(nullif(current_setting('cdc.actor', true), ''), session_user::text),
    coalesce(nullif(current_setting('cdc.source', true), ''), 'sql'),
    nullif(current_setting('cdc.reason', true), ''), nullif(current_setting('cdc.correlation_id', true), ''),
    nullif(current_setting('cdc.causation_id', true), ''))::text;
begin
  if current_setting('cdc.logical_ctx', true) is distinct from v_ctx then
    perform pg_logical_emit_message(true, 'cdc.ctx', v_ctx);
    perform set_config('cdc.logical_ctx', v_ctx, true);
  end if;
end
$$;

-- BEFORE INSERT OR UPDATE OR DELETE … FOR EACH STATEMENT on every tracked table in logical mode: before the
-- statement's first row reaches the WAL, so the relay has the context before the changes it covers.
create or replace function cdc.logical_context() returns trigger language plpgsql as $$
begin
  perform cdc.logical_send_context();
  return null;
end
$$;

-- The apply step's call of a table's generated capture function, without EXECUTE: cdc.logical_capture(fn, op, new,
-- old) is generated with one static call per table tracked in logical mode (a search tree on the function's name), so
-- each call is a plan PL/pgSQL keeps; EXECUTE parsed and planned the call again for every row (the step costs ~15%
-- less without it). Returns false for a table it does not know yet (tracked since the apply step's session compiled
-- it): the caller then runs the call through EXECUTE. cdc.track and cdc.untrack (and the end of this file) make it
-- anew when the set of tables changed, one transaction at a time; regenerating a table's capture after ALTER TABLE
-- leaves it alone (same function, same call), so concurrent ALTER TABLEs never queue on it.
create or replace function cdc.logical_dispatch_refresh() returns void language plpgsql as $$
declare
  v_src text := cdc.logical_dispatch_source();
begin
  if exists (select 1 from pg_proc p where p.oid = to_regprocedure('cdc.logical_capture(text, text, jsonb, jsonb)') and p.prosrc = v_src) then
    return;
  end if;
  perform pg_advisory_xact_lock(hashtext('cdc.logical_capture'));
  -- (the source again: the transaction that held the lock may have changed the set and committed)
  execute format('create or replace function cdc.logical_capture(p_fn text, p_op text, p_new jsonb, p_old jsonb) returns boolean language plpgsql as %L',
    cdc.logical_dispatch_source());
end
$$;

-- The body of cdc.logical_capture for the tables in logical mode now.
create or replace function cdc.logical_dispatch_source() returns text language plpgsql stable as $$
declare
  v_fns text[];
  v_calls text[];
begin
  -- (a database adopted from the old numbering gets the definitions before migration 003 adds capture_function)
  if exists (select 1 from pg_attribute a where a.attrelid = to_regclass('cdc.tracked') and a.attname = 'capture_function') then
    execute $q$select array_agg(t.capture_function order by t.capture_function collate "C"),
                      array_agg(format('perform cdc.%I(p_op, jsonb_populate_record(null::%I.%I, p_new), jsonb_populate_record(null::%I.%I, p_old));',
                        t.capture_function, t.schema_name, t.table_name, t.schema_name, t.table_name) order by t.capture_function collate "C")
                 from cdc.tracked t where t.active and t.mode = 'logical'$q$ into v_fns, v_calls;
  end if;
  return E'\nbegin' || cdc.logical_dispatch_branch(coalesce(v_fns, '{}'), coalesce(v_calls, '{}'), 1) || E'\n  return false;\nend\n';
end
$$;

-- The search tree of cdc.logical_capture over sorted function names: halves until a few names are left.
create or replace function cdc.logical_dispatch_branch(p_fns text[], p_calls text[], p_depth int) returns text
language plpgsql immutable as $$
declare
  n int := cardinality(p_fns);
  h int := (cardinality(p_fns) + 1) / 2;
  i text := E'\n' || repeat('  ', p_depth);
begin
  if n <= 4 then
    return coalesce((select string_agg(format('%sif p_fn = %L then%s  %s%s  return true;%send if;', i, f, i, c, i, i), '' order by o)
                       from unnest(p_fns, p_calls) with ordinality as x(f, c, o)), '');
  end if;
  return format('%sif p_fn collate "C" < %L then%s%selse%s%send if;', i, p_fns[h + 1],
    cdc.logical_dispatch_branch(p_fns[1:h], p_calls[1:h], p_depth + 1), i,
    cdc.logical_dispatch_branch(p_fns[h + 1:], p_calls[h + 1:], p_depth + 1), i);
end
$$;

-- Whether the apply step keeps a table's row images (cdc.logical_images, the last full, unmasked image of each row)
-- instead of reading a row's previous image from its last stored event: when the event store cannot tell the row as
-- it was. A masked column is "***" there (change detection needs its real value), and a change of bookkeeping or
-- incidental columns alone makes no event, so the stored image misses it (trigger mode's OLD has it).
create or replace function cdc.logical_keeps_images(p_spec jsonb) returns boolean language sql immutable as $$
  select coalesce(jsonb_array_length(p_spec->'mask'), 0) + coalesce(jsonb_array_length(p_spec->'bookkeeping'), 0)
       + coalesce(jsonb_array_length(p_spec->'incidental'), 0) > 0
$$;

-- The set-based form of a table's capture for the apply step (cdc.track makes it as cdc.bulk_<table>(batch) for a
-- table in logical mode with no masks or incidental columns, no document and no stored generated column): a batch of
-- whole new transactions that change only this table, with neither unchanged TOASTed values, key changes nor REPLICA
-- IDENTITY FULL images, becomes its events in one statement, not a capture call per row. The same events as the
-- row-by-row path: the same envelope, key encoding, images (to_jsonb / row_to_json of the typed row), per-column
-- changes in column order (bookkeeping columns in the images only; an UPDATE that changes nothing else makes no
-- event), event types and reasons by the table's rules (an UPDATE split by cdc.split_update as the capture function
-- does), indexes per source transaction, versions after the aggregate's last stored one, ids from the commit
-- position. A row's previous image is the one its previous change in the batch left, else the image kept for it
-- (bookkeeping columns: a change of them alone makes no event, so the event store misses it), else its last stored
-- event's after; with bookkeeping columns the batch's last image of each row is kept, as the row-by-row path does.
create or replace function cdc.logical_bulk_source(p_schema text, p_table text, p_fn text, p_name text, p_agg text, p_pk text[],
  p_exclude text[], p_bookkeeping text[], p_rules_c jsonb, p_rules_u jsonb, p_rules_d jsonb) returns text
language plpgsql stable as $$
declare
  v_rel regclass := format('%I.%I', p_schema, p_table)::regclass;
  v_images boolean := cardinality(p_bookkeeping) > 0;
  v_split boolean := jsonb_array_length(p_rules_u) > 0;
  v_delta text;
  v_events text;
begin
  -- an UPDATE's changed columns: JSON text with a leading comma per column, or (split by rules) a jsonb array with
  -- the bookkeeping columns, which ride along with the first event (as in the capture function)
  select case when v_split then '''[]''::jsonb' || coalesce(string_agg(format($c$
             || case when %s then %s else '[]'::jsonb end$c$, c.changed, cdc.change_jsonb_sql(a.attname, false, 'n', 'o')), '' order by a.attnum), '')
              else '''''' || coalesce(string_agg(format($c$
             || case when %s then %s else '' end$c$, c.changed, c.fragment), '' order by a.attnum)
                     filter (where not a.attname = any(p_bookkeeping)), '') end
    into v_delta
    from pg_attribute a cross join lateral cdc.change_sql(a.attname, a.atttypid, false, 'n', 'o') c
   where a.attrelid = v_rel and a.attnum > 0 and not a.attisdropped and not a.attname = any(p_exclude);
  -- the events of the changes: one per INSERT/DELETE and per changed UPDATE, or the UPDATE's parts by the rules
  v_events := format(case when v_split then $e$
  ), split as (
    select m.*, coalesce(s.n, 1) as b_sub,
           case m.b_k when 'c' then %1$s when 'u' then s.type else %2$s end as b_type,
           case when m.b_k = 'u' then %3$s else '[]' end as b_changes,
           case when m.b_k = 'u' then s.before::text else m.b_old_text end as b_before,
           case when m.b_k = 'u' then s.after::text else m.b_new_text end as b_after
      from imaged m
      left join lateral (select * from cdc.split_update(%4$L, m.b_delta, %5$L, m.b_old_json, %6$L) with ordinality as x(type, changes, before, after, n)
                          where m.b_k = 'u') s on true
     where m.b_k <> 'u' or s.n is not null$e$ else $e$
  ), split as (
    select m.*, 1 as b_sub,
           case m.b_k when 'c' then %1$s when 'u' then %6$L else %2$s end as b_type,
           case when m.b_k = 'u' then '[' || substr(m.b_delta, 2) || ']' else '[]' end as b_changes,
           m.b_old_text as b_before, m.b_new_text as b_after
      from imaged m where m.b_k <> 'u' or m.b_delta <> ''$e$ end,
    cdc.rule_type_sql(p_rules_c, 'm.b_new_text::jsonb', p_agg || 'Created'), cdc.rule_type_sql(p_rules_d, 'm.b_old_text::jsonb', p_agg || 'Deleted'),
    cdc.changes_without_sql('s.changes', p_bookkeeping) || '::text',
    p_rules_u, p_bookkeeping, p_agg || 'Updated');
  -- jit = off: the planner prices a set-returning function at 1,000 rows a call, so a batch of 150 changes with rules
  -- looked costly enough to compile (62 of 97 ms); a kept image is read by a probe per row (a join read all of them)
  return format($f$
create or replace function cdc.%1$I(p_batch jsonb)
returns table (event_id text, aggregate_type text, aggregate_id text, version bigint, type text, payload text)
language plpgsql set enable_seqscan = off set plan_cache_mode = force_generic_plan set jit = off as $fn$
#variable_conflict use_column
begin
  return query
  -- (materialized: a later step's sort would otherwise carry each item's whole transaction, items and all, along)
  with it as materialized (
    select t.n as b_tx, i.o as b_pos, (t.x->>'lsn')::pg_lsn as b_lsn, (t.x->>'at')::timestamptz as b_at, (t.x->>'xid')::xid8 as b_xid,
           case when i.x ? 'x' then t.x->'ctx'->((i.x->>'x')::int) end as b_ctx, i.x->>'k' as b_k, i.x->>'key' as b_key,
           i.x->'new' as b_new, i.x->'old' as b_old
      from jsonb_array_elements(p_batch) with ordinality as t(x, n)
     cross join lateral jsonb_array_elements(t.x->'items') with ordinality as i(x, o)
  ), keyed as (
    select it.*, %2$s as b_id
      from it cross join lateral jsonb_populate_record(null::%3$I.%4$I, coalesce(it.b_new, it.b_old)) as kr
  ), prior as (
    select k.*, s.version as b_base,
           case when lag(k.b_pos) over w is not null then lag(k.b_new) over w else %9$s end as b_prev,
           row_number() over (partition by k.b_id order by k.b_tx desc, k.b_pos desc) as b_last
      from keyed k%10$s
      left join lateral (select e.version, case when jsonb_typeof(e.payload->'after') = 'object' then e.payload->'after' end as after
                           from cdc.event_store e where e.aggregate_type = %5$L and e.aggregate_id = k.b_id
                          order by e.version desc limit 1) s on true
    window w as (partition by k.b_id order by k.b_tx, k.b_pos)
  ), imaged as (
    select p.b_tx, p.b_pos, p.b_lsn, p.b_at, p.b_xid, p.b_ctx, p.b_k, p.b_id, p.b_base,
           case when p.b_k = 'u' then %6$s end as b_delta,
           case when p.b_k %15$s then %7$s end as b_old_text,
           case when p.b_k %16$s then %8$s end as b_new_text%12$s
      from prior p
     cross join lateral jsonb_populate_record(null::%3$I.%4$I, p.b_new) as n
     cross join lateral jsonb_populate_record(null::%3$I.%4$I, case when p.b_k <> 'c' then coalesce(p.b_prev, p.b_old) end) as o%13$s
  ), ev as (
    select v.*, (row_number() over (partition by v.b_tx order by v.b_pos, v.b_sub) - 1)::int as b_index,
           coalesce(v.b_base, 0) + row_number() over (partition by v.b_id order by v.b_tx, v.b_pos, v.b_sub) as b_version
      from split v
  ), body as (
    select v.*, cdc.logical_event_id(v.b_lsn, v.b_at, v.b_index) as b_event
      from ev v
  ), done as (
    select d.*, cdc.envelope_of(d.b_event, d.b_type, d.b_k, %5$L, d.b_id, d.b_version, d.b_xid, d.b_index, d.b_at,
             d.b_changes, d.b_before, d.b_after,
             coalesce(nullif(d.b_ctx->>1, ''), session_user::text), coalesce(nullif(d.b_ctx->>2, ''), 'sql'),
             coalesce(nullif(d.b_ctx->>3, ''), %14$s), nullif(d.b_ctx->>4, ''), nullif(d.b_ctx->>5, ''))::jsonb as b_payload
      from body d
  ), stored as (
    insert into cdc.event_store (id, aggregate_type, aggregate_id, version, type, tx_id, occurred_at, payload)
    select d.b_event, %5$L, d.b_id, d.b_version, d.b_type, d.b_xid, d.b_at, d.b_payload from done d
  )%11$s
  select d.b_event::text, %5$L::text, d.b_id, d.b_version, d.b_type, d.b_payload::text from done d order by d.b_tx, d.b_pos, d.b_sub;
end
$fn$
$f$,
    p_fn, cdc.key_expr('kr', p_pk), p_schema, p_table, p_name, v_delta,
    cdc.image_text_expr('o', p_exclude, null), cdc.image_text_expr('n', p_exclude, null),
    case when v_images then 'coalesce(g.image, s.after)' else 's.after' end,
    case when v_images then format(E'\n      left join lateral (select g.image from cdc.logical_images g where g.rel = %L and g.key = k.b_key limit 1) g on true',
      p_schema || '.' || p_table) else '' end,
    -- (the rows of the batch's last changes: one write each, the image kept or gone)
    case when v_images then format($k$, gone as (
    delete from cdc.logical_images g using prior p where p.b_last = 1 and p.b_k = 'd' and g.rel = %1$L and g.key = p.b_key
  ), kept as (
    insert into cdc.logical_images as g (rel, key, image) select %1$L, p.b_key, p.b_new from prior p where p.b_last = 1 and p.b_k <> 'd'
        on conflict (rel, key) do update set image = excluded.image
  )$k$, p_schema || '.' || p_table) else '' end,
    case when v_split then format(E',\n           case when p.b_k = ''u'' then %s end as b_old_json', cdc.image_expr('o', p_exclude, null)) else '' end,
    v_events,
    -- a rule's reason stands in for the writer's when it gave none
    format('case d.b_k when ''c'' then %s when ''d'' then %s end', coalesce(cdc.rule_reason_sql(p_rules_c, 'd.b_new_text::jsonb'), 'null'),
      coalesce(cdc.rule_reason_sql(p_rules_d, 'd.b_old_text::jsonb'), 'null')),
    -- (split by rules, an UPDATE's images are cdc.split_update's: text images for inserts and deletes only)
    case when v_split then '= ''d''' else '<> ''c''' end, case when v_split then '= ''c''' else '<> ''d''' end);
end
$$;

-- The relay's apply step: one call per batch of decoded source transactions, in commit order, in the relay's own
-- transaction. p_batch: [{ lsn, at, xid, ctx: [context…], items: [item…], part? }], items in WAL order:
--   { x: context index, k: 'c'|'u'|'d', s: schema, t: table, key: text, okey?: text, new?: {…}, old?: {…}, u?: [col] }
--   { x, k: 'a', a: { aggregate_type, aggregate_id, op, type, changes, before, after, data } }   (cdc.append)
--   { x, k: 'doc', a: { aggregate_type, aggregate_id, aggregate, documentEvent, children, after } } (root document)
-- Row changes run the table's generated capture function (through cdc.logical_capture) with NEW/OLD built from the
-- decoded tuple and the stored previous image; a batch of whole new transactions of one plain table takes its
-- set-based form instead (cdc.logical_bulk_source). Transactions at or below the slot's applied_lsn were applied before (a
-- replay after a crash): they are not applied again, only their events are read back (ids derive from lsn and index).
-- Returns the events of the whole batch in order.
-- A large source transaction comes in parts, one per call, alone in its batch: part = { first, last } (first: the
-- offset of its first item in the transaction), ctx all contexts so far. The slot records how far it got (partial_*),
-- so a replay skips the items applied before; a part returns only the events it made (cdc.logical_events reads back
-- the others).
create or replace function cdc.logical_apply(p_slot text, p_batch jsonb)
returns table (event_id text, aggregate_type text, aggregate_id text, version bigint, type text, payload text)
language plpgsql set enable_seqscan = off set plan_cache_mode = force_generic_plan as $$
declare
  v_applied pg_lsn;
  v_plsn pg_lsn;
  v_pitems int;
  v_pindex int;
  v_part boolean;
  v_skip int;
  v_start int;
  v_o int;
  v_tx jsonb;
  v_n_tx int := jsonb_array_length(p_batch);
  v_t int := 0;
  v_cur int := 0;
  v_now boolean := false;
  v_it jsonb;
  v_ctx jsonb;
  v_x text;
  v_lsn pg_lsn;
  v_at timestamptz;
  v_rel text;
  v_last text;
  v_key text;
  v_prev jsonb;
  v_new jsonb;
  v_old jsonb;
  v_spec jsonb;
  v_mask text[];
  v_images boolean;
  v_bulk regprocedure;
  v_fn text;
  v_call text;
  v_gen text;
  v_g jsonb;
  v_agg text;
  v_keys text[];
  v_n int;
  v_g_index int;
  v_op text;
  v_id uuid;
  v_ids uuid[] := '{}';
begin
  select s.applied_lsn, s.partial_lsn, s.partial_items, s.partial_index into v_applied, v_plsn, v_pitems, v_pindex
    from cdc.logical_slots s where s.slot = p_slot for update;
  if not found then
    insert into cdc.logical_slots (slot) values (p_slot);
    v_applied := '0/0';
  end if;
  -- Whole new transactions that change only one table, which has a set-based capture: one statement for the batch.
  select case when count(distinct i.x->>'s') = 1 and count(distinct i.x->>'t') = 1 then
                to_regprocedure(format('cdc.%I(jsonb)', cdc.generated_name('bulk', min(i.x->>'s'), min(i.x->>'t')))) end
    into v_bulk
    from jsonb_array_elements(p_batch) t(x) cross join lateral jsonb_array_elements(t.x->'items') i(x)
  having bool_and((t.x->>'lsn')::pg_lsn > v_applied and not t.x ? 'part' and i.x->>'k' in ('c', 'u', 'd')
                  and not i.x ?| array['u', 'okey', 'full']);
  if v_bulk is not null then
    return query execute format('select * from %s($1)', v_bulk::oid::regproc) using p_batch;
    update cdc.logical_slots s set applied_lsn = greatest(s.applied_lsn, (p_batch->-1->>'lsn')::pg_lsn) where s.slot = p_slot;
    return;
  end if;
  -- One loop over every item of the batch (a loop per transaction opened a cursor per transaction: ~4% of the step
  -- with a few rows each), then a last pass (v_t past the end) that finishes the last transaction.
  for v_t, v_it, v_o in
    select t.n::int, i.x, coalesce((t.x->'part'->>'first')::int, 0) + i.o::int - 1
      from jsonb_array_elements(p_batch) with ordinality as t(x, n)
      left join lateral jsonb_array_elements(t.x->'items') with ordinality as i(x, o) on true
    union all select v_n_tx + 1, null, null
    order by 1, 3
  loop
    if v_t <> v_cur then
      if v_now then
        -- the transaction before is through: its events (one id per index the capture code took), a part's own, a
        -- whole transaction's all
        v_n := current_setting('cdc.tx_index')::int;
        if v_part and not (v_tx->'part'->>'last')::boolean then
          v_plsn := v_lsn; v_pitems := (v_tx->'part'->>'first')::int + jsonb_array_length(v_tx->'items'); v_pindex := v_n;
        else
          v_applied := v_lsn; v_plsn := null; v_pitems := null; v_pindex := null;
        end if;
        for v_g_index in case when v_part then v_start else 0 end .. v_n - 1 loop
          v_ids := v_ids || cdc.logical_event_id(v_lsn, v_at, v_g_index);
        end loop;
      end if;
      exit when v_t > v_n_tx;
      v_cur := v_t;
      v_tx := p_batch->(v_t - 1);
      v_lsn := (v_tx->>'lsn')::pg_lsn;
      v_at := (v_tx->>'at')::timestamptz;
      v_part := v_tx ? 'part';
      v_now := v_lsn > v_applied;
      if v_now then
        -- a transaction applied in part before: go on where it stopped
        v_skip := case when v_plsn = v_lsn then v_pitems else 0 end;
        v_start := case when v_plsn = v_lsn then v_pindex else 0 end;
        perform set_config('cdc.commit_lsn', v_lsn::text, true), set_config('cdc.commit_time', v_tx->>'at', true),
          set_config('cdc.tx_id', v_tx->>'xid', true), set_config('cdc.tx_index', v_start::text, true);
        v_x := '';
      elsif not v_part then
        -- applied before this replay: its events are read back (ids derive from its commit position)
        v_n := 0;
        loop
          v_id := cdc.logical_event_id(v_lsn, v_at, v_n);
          exit when not exists (select 1 from cdc.event_store e where e.id = v_id);
          v_ids := v_ids || v_id;
          v_n := v_n + 1;
        end loop;
      end if;
    end if;
    continue when not v_now or v_it is null;
    -- the who/why in force: set again only when this item's context differs from the previous item's
    if coalesce(v_it->>'x', '-') is distinct from v_x then
      v_x := coalesce(v_it->>'x', '-');
      v_ctx := case when v_it ? 'x' then v_tx->'ctx'->((v_it->>'x')::int) end;
      perform set_config('cdc.actor', coalesce(v_ctx->>1, ''), true), set_config('cdc.source', coalesce(v_ctx->>2, ''), true),
        set_config('cdc.reason', coalesce(v_ctx->>3, ''), true), set_config('cdc.correlation_id', coalesce(v_ctx->>4, ''), true),
        set_config('cdc.causation_id', coalesce(v_ctx->>5, ''), true);
    end if;
    continue when v_o < v_skip;
    if v_it->>'k' = 'a' then
      perform cdc.append(v_it->'a'->>'aggregate_type', v_it->'a'->>'aggregate_id', v_it->'a'->>'op', v_it->'a'->>'type',
        v_it->'a'->'changes', v_it->'a'->'before', v_it->'a'->'after', v_it->'a'->'data', 'logical');
    elsif v_it->>'k' = 'doc' then
      perform cdc.logical_document(v_it->'a');
    else
      v_rel := (v_it->>'s') || '.' || (v_it->>'t');
      -- the table's capture settings, looked up again only when the table changes (batches run long per table)
      if v_rel is distinct from v_last then
        v_last := v_rel;
        v_spec := null;
        select t.spec, t.capture_function, t.aggregate_type, t.key_columns,
               array(select jsonb_array_elements_text(coalesce(t.spec->'mask', '[]'))), cdc.logical_keeps_images(t.spec)
          into v_spec, v_fn, v_agg, v_keys, v_mask, v_images from cdc.tracked t
         where t.schema_name = v_it->>'s' and t.table_name = v_it->>'t' and t.active and t.mode = 'logical';
        v_call := format('select cdc.%I($1, jsonb_populate_record(null::%I.%I, $2), jsonb_populate_record(null::%I.%I, $3))',
          v_fn, v_it->>'s', v_it->>'t', v_it->>'s', v_it->>'t');
        -- stored generated columns are not in pgoutput's tuples (PostgreSQL 15–17): computed here from the decoded
        -- row with the table's own generation expressions (they may only read the row itself)
        select format('select jsonb_build_object(%s) from jsonb_populate_record(null::%I.%I, $1) as r',
                 string_agg(format('%L, %s', a.attname, pg_get_expr(d.adbin, d.adrelid)), ', ' order by a.attnum), v_it->>'s', v_it->>'t')
          into v_gen from pg_attribute a join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
         where a.attrelid = format('%I.%I', v_it->>'s', v_it->>'t')::regclass and a.attgenerated = 's' and not a.attisdropped
        having count(*) > 0;
      end if;
      -- a table in the publication but no longer tracked (or tracked by a trigger now): nothing to capture here
      continue when v_spec is null;
      v_key := coalesce(v_it->>'okey', v_it->>'key');
      -- the previous image (an insert has none to read: it brings every column and no before image): the row's
      -- last stored after image (a snapshot's or a change's; a deletion's is null: nothing known), read by the same
      -- index probe as the version, or the image kept for it (cdc.logical_keeps_images)
      v_prev := null;
      if v_it->>'k' <> 'c' then
        if v_images then
          select i.image into v_prev from cdc.logical_images i where i.rel = v_rel and i.key = v_key;
        end if;
        if v_prev is null then
          -- (no image kept for the row yet, e.g. one that existed before tracking: masked columns unknown)
          select case when jsonb_typeof(e.payload->'after') = 'object' then (e.payload->'after') - v_mask end into v_prev
            from cdc.event_store e where e.aggregate_type = v_agg and e.aggregate_id = cdc.logical_aggregate_id(v_keys, v_it->'old')
           order by e.version desc limit 1;
        end if;
      end if;
      v_new := case when not v_it ? 'new' then null
                    when not v_it ? 'u' then v_it->'new'
                    else (v_it->'new') || coalesce((select jsonb_object_agg(c, v_prev->c) from jsonb_array_elements_text(v_it->'u') c), '{}') end;
      -- before image: the whole old row (REPLICA IDENTITY FULL), else the stored one, else only the key
      -- (only the key: nothing is known about the row before, every other column shows as changed)
      v_old := case when v_it->>'k' = 'c' then null
                    when v_it->>'full' = 'true' then v_it->'old'
                    else coalesce(v_prev, v_it->'old') end;
      if v_gen is not null then
        if v_new is not null then execute v_gen into v_g using v_new; v_new := v_new || v_g; end if;
        if v_it->>'full' = 'true' then execute v_gen into v_g using v_old; v_old := v_old || v_g; end if;
      end if;
      v_op := case v_it->>'k' when 'c' then 'INSERT' when 'u' then 'UPDATE' else 'DELETE' end;
      if not cdc.logical_capture(v_fn, v_op, v_new, v_old) then
        execute v_call using v_op, v_new, v_old;
      end if;
      if v_images then
        if v_it->>'k' = 'd' or v_it ? 'okey' then
          delete from cdc.logical_images i where i.rel = v_rel and i.key = v_key;
        end if;
        if v_it->>'k' <> 'd' then
          insert into cdc.logical_images as i (rel, key, image) values (v_rel, v_it->>'key', v_new)
            on conflict (rel, key) do update set image = excluded.image;
        end if;
      end if;
    end if;
  end loop;
  -- the batch's events in order, in one statement: one per event was a twentieth of the step (and a join with
  -- generate_series per transaction was planned again every time, an eighth)
  return query select e.id::text, e.aggregate_type, e.aggregate_id, e.version, e.type, e.payload::text
    from unnest(v_ids) with ordinality as u(id, n) join cdc.event_store e on e.id = u.id order by u.n;
  update cdc.logical_slots s set applied_lsn = greatest(s.applied_lsn, v_applied), partial_lsn = v_plsn,
    partial_items = v_pitems, partial_index = v_pindex where s.slot = p_slot;
end
$$;

-- Where a large source transaction stands before its parts are applied: applied wholly, or how many of its items and
-- events a crashed attempt applied (the relay reads those events back with cdc.logical_events and sends the rest).
create or replace function cdc.logical_progress(p_slot text, p_lsn pg_lsn) returns table (applied boolean, items int, events int)
language plpgsql stable as $$
-- (PL/pgSQL: its body is checked when first run, after migration 004 made cdc.logical_slots; a database adopted from
-- the old numbering gets the definitions before that)
begin
  return query select coalesce(s.applied_lsn >= p_lsn, false),
         case when s.partial_lsn = p_lsn then s.partial_items else 0 end,
         case when s.partial_lsn = p_lsn then s.partial_index else 0 end
    from (select 1) one left join cdc.logical_slots s on s.slot = p_slot;
end
$$;

-- The events of the source transaction committed at p_lsn with indexes p_from … p_from + p_count - 1, in order.
create or replace function cdc.logical_events(p_lsn pg_lsn, p_at timestamptz, p_from int, p_count int)
returns table (event_id text, aggregate_type text, aggregate_id text, version bigint, type text, payload text)
language sql stable set enable_seqscan = off as $$
  select e.id::text, e.aggregate_type, e.aggregate_id, e.version, e.type, e.payload::text
    from generate_series(p_from, p_from + p_count - 1) g join cdc.event_store e on e.id = cdc.logical_event_id(p_lsn, p_at, g)
   order by g
$$;

-- The aggregate id of a tracked table's row from its key image (column → text), as the generated capture code
-- computes it (encoding in track.sql).
create or replace function cdc.logical_aggregate_id(p_key_columns text[], p_key jsonb) returns text language plpgsql immutable as $$
begin
  if cardinality(p_key_columns) = 1 then return p_key->>p_key_columns[1]; end if;
  return (select string_agg(replace(replace(p_key->>c, '%', '%25'), ':', '%3A'), ':' order by o)
            from unnest(p_key_columns) with ordinality as x(c, o));
end
$$;

-- A root document (capture.roots) in logical mode: the writer sends the document it built at commit (null for a root
-- it deleted); here, in commit order, it is folded into the root's events of that transaction, as the trigger modes
-- do at commit (cdc.fold_document).
create or replace function cdc.logical_document(p_doc jsonb) returns void language plpgsql as $$
begin
  perform cdc.fold_document(p_doc->>'aggregate_type', p_doc->>'aggregate_id', case when jsonb_typeof(p_doc->'after') = 'object'
    then p_doc->'after' end, coalesce(p_doc->'children', '{}'), p_doc->>'aggregate', coalesce((p_doc->>'documentEvent')::boolean, false),
    0, 'logical');
end
$$;

-- Puts a tracked table into the relay's publication (created when missing), in the transaction that tracks it: every
-- change committed after the table is tracked is decoded.
create or replace function cdc.logical_publish(p_publication text, p_schema text default null, p_table text default null) returns void
language plpgsql as $$
begin
  if p_publication is null then
    raise exception 'capture mode logical needs the relay''s publication in the capture spec' using errcode = '22023';
  end if;
  if not exists (select 1 from pg_publication where pubname = p_publication) then
    execute format('create publication %I with (publish = ''insert, update, delete, truncate'', publish_via_partition_root = true)', p_publication);
  elsif not exists (select 1 from pg_publication where pubname = p_publication and pubinsert and pubupdate and pubdelete
                      and pubtruncate and pubviaroot) then
    -- e.g. the wal relay's insert-only publication of cdc.outbox, from before the switch to logical mode
    execute format('alter publication %I set (publish = ''insert, update, delete, truncate'', publish_via_partition_root = true)', p_publication);
  end if;
  if p_table is not null and not exists (select 1 from pg_publication_tables where pubname = p_publication and schemaname = p_schema and tablename = p_table) then
    execute format('alter publication %I add table %I.%I', p_publication, p_schema, p_table);
  end if;
end
$$;

-- Recovery after a lost slot (docs/logical.md): forget the slot's recorded state, so the relay creates a new slot,
-- and the stored row images, which may be stale now (the next change of each row falls back to its last stored
-- event, e.g. the `cdc snapshot --restart` that must follow). Returns whether the slot was recorded.
create or replace function cdc.logical_recover(p_slot text) returns boolean language plpgsql as $$
begin
  delete from cdc.logical_images;
  delete from cdc.logical_slots where slot = p_slot;
  return found;
end
$$;

select cdc.logical_dispatch_refresh();
