-- capture.mode = 'logical': no row trigger on tracked tables. The relay decodes their row changes from the WAL
-- (pgoutput, persistent slot, a publication over the tracked tables) and runs the same generated capture code the
-- triggers run, with the row images it decoded, inside its own transaction (cdc.logical_apply), off the write path.
-- What the writing transaction still does: a BEFORE … FOR EACH STATEMENT trigger sends its who/why once (again only
-- when it changed) as one transactional logical message (prefix 'cdc.ctx'); cdc.append (cdc.emit, snapshots) and
-- root documents send their request as a message ('cdc.append', 'cdc.doc') for the relay to append in commit order.

-- The last full row image of every captured row (unmasked, all columns, column → the type's text output; json and
-- jsonb columns as JSON): the before image of the next UPDATE/DELETE, which the WAL carries only as the key under
-- REPLICA IDENTITY DEFAULT, and the source of unchanged TOASTed values. Written by the relay only. Holds what the
-- tracked tables hold: grant access to schema cdc as to those tables.
create table cdc.logical_images (
  rel text not null,     -- schema.table
  key text not null,     -- JSON array of the key columns' text values (the relay's encoding)
  image jsonb not null,
  primary key (rel, key)
);

-- Per slot: the commit LSN of the last source transaction applied to the event store (replays skip up to it) and
-- the state the relay found the slot in ('lost' stops the relay loudly until an operator re-snapshots).
create table cdc.logical_slots (
  slot text primary key,
  applied_lsn pg_lsn not null default '0/0',
  state text not null default 'ok',
  created_at timestamptz not null default now()
);
-- Event id of the index-th event of the source transaction committed at p_lsn: UUIDv7-shaped (commit time in
-- milliseconds, version 7, RFC 9562 variant) with the 74 other bits from md5(lsn/index), so every replay derives the
-- same id.
create or replace function cdc.logical_event_id(p_lsn pg_lsn, p_at timestamptz, p_index int) returns uuid
language sql immutable as $$
  select encode(substr(int8send(floor(extract(epoch from p_at) * 1000)::bigint), 3, 6)
    || set_byte(set_byte(substr(h, 1, 10), 0, 112 | (get_byte(h, 0) & 15)), 2, 128 | (get_byte(h, 2) & 63)), 'hex')::uuid
    from (select decode(md5(p_lsn::text || '/' || p_index), 'hex') as h) x
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

-- The relay's apply step: one call per batch of decoded source transactions, in commit order, in the relay's own
-- transaction. p_batch: [{ lsn, at, xid, ctx: [context…], items: [item…] }], items in WAL order:
--   { x: context index, k: 'c'|'u'|'d', s: schema, t: table, key: text, okey?: text, new?: {…}, old?: {…}, u?: [col] }
--   { x, k: 'a', a: { aggregate_type, aggregate_id, op, type, changes, before, after, data } }   (cdc.append)
--   { x, k: 'doc', a: { aggregate_type, aggregate_id, type, after } }                           (root document)
-- Row changes run the table's generated capture function with NEW/OLD built from the decoded tuple and the stored
-- previous image. Transactions at or below the slot's applied_lsn were applied before (a replay after a crash):
-- they are not applied again, only their events are read back (ids derive from lsn and index). Returns the events of
-- the whole batch in order.
create or replace function cdc.logical_apply(p_slot text, p_batch jsonb)
returns table (event_id text, aggregate_type text, aggregate_id text, version bigint, type text, payload text)
language plpgsql set enable_seqscan = off as $$
declare
  v_applied pg_lsn;
  v_tx jsonb;
  v_it jsonb;
  v_ctx jsonb;
  v_lsn pg_lsn;
  v_at timestamptz;
  v_rel text;
  v_key text;
  v_prev jsonb;
  v_new jsonb;
  v_old jsonb;
  v_spec jsonb;
  v_n int;
begin
  select s.applied_lsn into v_applied from cdc.logical_slots s where s.slot = p_slot for update;
  if not found then
    insert into cdc.logical_slots (slot) values (p_slot);
    v_applied := '0/0';
  end if;
  for v_tx in select x from jsonb_array_elements(p_batch) x loop
    v_lsn := (v_tx->>'lsn')::pg_lsn;
    v_at := (v_tx->>'at')::timestamptz;
    if v_lsn > v_applied then
      perform set_config('cdc.commit_lsn', v_lsn::text, true), set_config('cdc.commit_time', v_tx->>'at', true),
        set_config('cdc.tx_id', v_tx->>'xid', true), set_config('cdc.tx_index', '0', true);
      for v_it in select x from jsonb_array_elements(v_tx->'items') x loop
        v_ctx := case when v_it ? 'x' then v_tx->'ctx'->((v_it->>'x')::int) end;
        perform set_config('cdc.actor', coalesce(v_ctx->>1, ''), true), set_config('cdc.source', coalesce(v_ctx->>2, ''), true),
          set_config('cdc.reason', coalesce(v_ctx->>3, ''), true), set_config('cdc.correlation_id', coalesce(v_ctx->>4, ''), true),
          set_config('cdc.causation_id', coalesce(v_ctx->>5, ''), true);
        if v_it->>'k' = 'a' then
          perform cdc.append(v_it->'a'->>'aggregate_type', v_it->'a'->>'aggregate_id', v_it->'a'->>'op', v_it->'a'->>'type',
            v_it->'a'->'changes', v_it->'a'->'before', v_it->'a'->'after', v_it->'a'->'data', 'logical');
        elsif v_it->>'k' = 'doc' then
          perform cdc.logical_document(v_it->'a');
        else
          v_rel := (v_it->>'s') || '.' || (v_it->>'t');
          select t.spec into v_spec from cdc.tracked t where v_it->>'s' = 'public' and t.table_name = v_it->>'t';
          -- a table still in the publication but no longer tracked: nothing to capture
          continue when v_spec is null;
          v_key := coalesce(v_it->>'okey', v_it->>'key');
          select i.image into v_prev from cdc.logical_images i where i.rel = v_rel and i.key = v_key;
          if v_prev is null and v_it->>'k' <> 'c' then
            -- no image yet (a row that existed before tracking): the last stored after image, masked columns unknown
            select (e.payload->'after') - array(select jsonb_array_elements_text(coalesce(v_spec->'mask', '[]'))) into v_prev
              from cdc.event_store e where e.aggregate_type = v_it->>'t' and e.aggregate_id = cdc.logical_aggregate_id(v_it->>'t', v_it->'old')
             order by e.version desc limit 1;
          end if;
          v_new := case when v_it ? 'new' then (v_it->'new') || coalesce((select jsonb_object_agg(c, v_prev->c)
            from jsonb_array_elements_text(v_it->'u') c), '{}') end;
          -- before image: the whole old row (REPLICA IDENTITY FULL), else the stored one, else only the key
          -- (only the key: nothing is known about the row before, every other column shows as changed)
          v_old := case when v_it->>'k' = 'c' then null
                        when v_it->>'full' = 'true' then v_it->'old'
                        else coalesce(v_prev, v_it->'old') end;
          execute format('select cdc.%I($1, jsonb_populate_record(null::%I.%I, $2), jsonb_populate_record(null::%I.%I, $3))',
            'capture_' || (v_it->>'t'), v_it->>'s', v_it->>'t', v_it->>'s', v_it->>'t')
            using case v_it->>'k' when 'c' then 'INSERT' when 'u' then 'UPDATE' else 'DELETE' end, v_new, v_old;
          if v_it->>'k' = 'd' or v_it ? 'okey' then
            delete from cdc.logical_images i where i.rel = v_rel and i.key = v_key;
          end if;
          if v_it->>'k' <> 'd' then
            insert into cdc.logical_images as i (rel, key, image) values (v_rel, v_it->>'key', v_new)
              on conflict (rel, key) do update set image = excluded.image;
          end if;
        end if;
      end loop;
      v_applied := v_lsn;
    end if;
    -- the transaction's events, in order (ids derive from its commit position)
    v_n := 0;
    loop
      return query select e.id::text, e.aggregate_type, e.aggregate_id, e.version, e.type, e.payload::text
        from cdc.event_store e where e.id = cdc.logical_event_id(v_lsn, v_at, v_n);
      exit when not found;
      v_n := v_n + 1;
    end loop;
  end loop;
  update cdc.logical_slots s set applied_lsn = v_applied where s.slot = p_slot and s.applied_lsn < v_applied;
end
$$;

-- The aggregate id of a tracked table's row from its key image (column → text), as the generated capture code
-- computes it (encoding in 001_cdc_core.sql).
create or replace function cdc.logical_aggregate_id(p_table text, p_key jsonb) returns text language sql stable as $$
  select case when cardinality(k) = 1 then p_key->>k[1]
    else (select string_agg(replace(replace(p_key->>c, '%', '%25'), ':', '%3A'), ':' order by o) from unnest(k) with ordinality as x(c, o)) end
    from (select cdc.primary_key(p_table) as k) x
$$;

-- A root document (capture.roots) in logical mode: the writer sends the document it built at commit; here, in commit
-- order, it becomes '<Aggregate>DocumentChanged' against the root's previous document, as the trigger modes do.
create or replace function cdc.logical_document(p_doc jsonb) returns void language plpgsql as $$
declare
  v_prev jsonb;
  v_changes jsonb;
begin
  select e.payload->'after' into v_prev from cdc.event_store e where e.aggregate_type = p_doc->>'aggregate_type'
     and e.aggregate_id = p_doc->>'aggregate_id' and e.type = p_doc->>'type' order by e.version desc limit 1;
  select coalesce(jsonb_agg(jsonb_build_object('path', n.key, 'before', v_prev->n.key, 'after', n.value)), '[]')
    into v_changes from jsonb_each(p_doc->'after') n where v_prev is null or n.value is distinct from v_prev->n.key;
  if v_changes = '[]' then return; end if;
  perform cdc.append(p_doc->>'aggregate_type', p_doc->>'aggregate_id', 'u', p_doc->>'type', v_changes, v_prev,
    p_doc->'after', null, 'logical');
end
$$;

-- Appends one event (cdc.emit, snapshots, root documents, update rules): the same steps as the generated triggers.
-- Callers serialize writers of one aggregate (row lock of a tracked row, or the advisory lock of cdc.emit).
-- Logical mode: in a writer's transaction the request goes to the WAL (message 'cdc.append', after the writer's
-- context) and the relay appends it in commit order (the result carries no id yet); in the relay's apply step
-- (cdc.commit_lsn set) the id, time and transaction come from the source transaction's commit.
create or replace function cdc.append(
  p_aggregate_type text, p_aggregate_id text, p_op text, p_type text,
  p_changes jsonb, p_before jsonb, p_after jsonb, p_data jsonb, p_mode text
) returns jsonb language plpgsql set enable_seqscan = off as $$
declare
  v_index int;
  v_version bigint;
  v_id uuid;
  v_at timestamptz;
  v_tx xid8;
  v_text text;
  v_event jsonb;
  v_lsn text := nullif(current_setting('cdc.commit_lsn', true), '');
begin
  if p_mode = 'logical' and v_lsn is null then
    perform cdc.logical_send_context();
    v_event := jsonb_build_object('aggregate_type', p_aggregate_type, 'aggregate_id', p_aggregate_id, 'op', p_op,
      'type', p_type, 'changes', p_changes, 'before', p_before, 'after', p_after, 'data', p_data);
    perform pg_logical_emit_message(true, 'cdc.append', v_event::text);
    return v_event;
  end if;
  v_index := coalesce(nullif(current_setting('cdc.tx_index', true), ''), '0')::int;
  perform set_config('cdc.tx_index', (v_index + 1)::text, true);
  if p_mode = 'logical' then
    v_at := current_setting('cdc.commit_time')::timestamptz;
    v_tx := current_setting('cdc.tx_id')::xid8;
    v_id := cdc.logical_event_id(v_lsn::pg_lsn, v_at, v_index);
  else
    v_id := cdc.uuidv7(); v_at := clock_timestamp(); v_tx := pg_current_xact_id();
  end if;
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
  elsif p_mode <> 'logical' then
    insert into cdc.outbox (event_id, tx_id) values (v_id, v_tx);
    if v_index = 0 and pg_sequence_last_value('cdc.relay_wake') = 1 then perform pg_notify('cdc_outbox', ''); end if;
  end if;
  return v_event;
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

-- enable_seqscan = off for the generated functions (see 004): the trigger function, or logical mode's function of
-- (TG_OP, NEW, OLD).
create or replace function cdc.track(p_table text, p_spec jsonb) returns jsonb language plpgsql as $$
declare v_result jsonb := cdc.track_generate(p_table, p_spec);
begin
  if p_spec->>'mode' = 'logical' then
    execute format('alter function cdc.%I(text, public.%I, public.%I) set enable_seqscan = off', 'capture_' || p_table, p_table, p_table);
  else
    execute format('alter function cdc.%I() set enable_seqscan = off', 'capture_' || p_table);
  end if;
  execute format('alter function cdc.%I(jsonb, int) set enable_seqscan = off', 'snapshot_' || p_table);
  return v_result;
end
$$;

-- Removes capture from a table (and its root document events, if it is a root); its history stays in
-- cdc.event_store. Idempotent.
create or replace function cdc.untrack(p_table text) returns boolean language plpgsql as $$
declare
  v_exists boolean := to_regclass(format('public.%I', p_table)) is not null;
  v_publication text := (select t.spec->>'publication' from cdc.tracked t where t.table_name = p_table);
begin
  if v_exists then
    execute format('drop trigger if exists cdc_capture_ins on public.%I', p_table);
    execute format('drop trigger if exists cdc_capture_upd on public.%I', p_table);
    execute format('drop trigger if exists cdc_capture_del on public.%I', p_table);
    execute format('drop trigger if exists cdc_capture_truncate on public.%I', p_table);
    execute format('drop trigger if exists cdc_capture_context on public.%I', p_table);
    execute format('drop function if exists cdc.%I(text, public.%I, public.%I)', 'capture_' || p_table, p_table, p_table);
    if exists (select 1 from pg_publication_tables where pubname = v_publication and schemaname = 'public' and tablename = p_table) then
      execute format('alter publication %I drop table public.%I', v_publication, p_table);
    end if;
  end if;
  perform cdc.untrack_root(p_table);
  execute format('drop function if exists cdc.%I()', 'capture_' || p_table);
  execute format('drop function if exists cdc.%I(jsonb, int)', 'snapshot_' || p_table);
  delete from cdc.tracked where table_name = p_table;
  return found;
end
$$;
create or replace function cdc.append_sql(p_table text, p_mode text)
returns text language sql immutable as $gen$
  select format($f$
  v_index := coalesce(nullif(current_setting('cdc.tx_index', true), ''), '0')::int;
  v_x := set_config('cdc.tx_index', (v_index + 1)::text, true);
  -- the next gapless version: the row lock serializes writers of the row, the unique index answers
  select s.version + 1 into v_version from cdc.event_store s
   where s.aggregate_type = %1$L and s.aggregate_id = v_id order by s.version desc limit 1;
  if not found then v_version := 1; end if;
%3$s
  v_text := cdc.envelope(v_event_id, v_type, v_op, %1$L, v_id, v_version, v_tx, v_index, v_at, v_changes, v_before, v_after);
  insert into cdc.event_store (id, aggregate_type, aggregate_id, version, type, tx_id, occurred_at, payload)
    values (v_event_id, %1$L, v_id, v_version, v_type, v_tx, v_at, v_text::jsonb);%2$s$f$,
    p_table,
    case when p_mode = 'logical' then $e$$e$
         when p_mode = 'emit' then $e$
  v_lsn := pg_logical_emit_message(true, 'cdc', v_text);$e$
    else $o$
  insert into cdc.outbox (event_id, tx_id) values (v_event_id, v_tx);
  if v_index = 0 and pg_sequence_last_value('cdc.relay_wake') = 1 then perform pg_notify('cdc_outbox', ''); end if;$o$
    end,
    case when p_mode = 'logical' then $l$
  v_at := current_setting('cdc.commit_time')::timestamptz; v_tx := current_setting('cdc.tx_id')::xid8;
  v_event_id := cdc.logical_event_id(current_setting('cdc.commit_lsn')::pg_lsn, v_at, v_index);$l$
    else $t$
  v_event_id := cdc.uuidv7(); v_at := clock_timestamp(); v_tx := pg_current_xact_id();$t$ end)
$gen$;

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
  if v_mode not in ('outbox', 'emit', 'logical') then
    raise exception 'capture mode % is not outbox, emit or logical', v_mode using errcode = '22023';
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

  -- logical mode: the same code as a function of (TG_OP, NEW, OLD) that the relay calls with decoded row images
  if v_mode = 'logical' then
    execute format('drop trigger if exists cdc_capture_ins on public.%I', p_table);
    execute format('drop trigger if exists cdc_capture_upd on public.%I', p_table);
    execute format('drop trigger if exists cdc_capture_del on public.%I', p_table);
    execute format('drop function if exists cdc.%I()', v_fn);
  else
    execute format('drop function if exists cdc.%I(text, public.%I, public.%I)', v_fn, p_table, p_table);
  end if;
  v_body := format($f$
create or replace function cdc.%1$I%10$s language plpgsql as $fn$
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
    v_update, cdc.append_sql(p_table, v_mode),
    case when v_mode = 'logical' then format('(tg_op text, new public.%I, old public.%I) returns int', p_table, p_table)
         else '() returns trigger' end);
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

  if v_mode = 'logical' then
    -- no row trigger: the context once per transaction, and the table in the relay's publication
    execute format('create or replace trigger cdc_capture_context before insert or update or delete on public.%I
      for each statement execute function cdc.logical_context()', p_table);
    execute format('create or replace trigger cdc_capture_truncate before truncate on public.%I for each statement execute function cdc.refuse_truncate()', p_table);
    perform cdc.logical_publish(p_spec->>'publication', 'public', p_table);
    insert into cdc.tracked (table_name, spec) values (p_table, p_spec)
      on conflict (table_name) do update set spec = excluded.spec, tracked_at = now();
    return jsonb_build_object('table', p_table, 'primaryKey', to_jsonb(v_pk));
  end if;
  execute format('drop trigger if exists cdc_capture_context on public.%I', p_table);
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
