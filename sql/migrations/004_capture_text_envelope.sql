-- Cheaper, steadier capture triggers (measured with bench/cases/capture.ts). `cdc migrate`
-- regenerates every tracked table's trigger function after the migrations, so this takes effect at once.
--
-- The envelope is built as JSON text by concatenation (strings through to_json, so they are escaped) and parsed
-- once into jsonb for the event store and the outbox: cheaper than nested jsonb_build_object calls, and emit mode
-- sends that same text as the WAL message instead of serializing the jsonb back to text. Key order in the text is
-- the envelope's documented order; jsonb columns normalize it as before.
create or replace function cdc.append_sql(p_table text, p_op text, p_type text, p_changes text, p_before text, p_after text, p_mode text)
returns text language sql immutable as $gen$
  select format($f$
    v_index := coalesce(nullif(current_setting('cdc.tx_index', true), ''), '0')::int;
    v_x := set_config('cdc.tx_index', (v_index + 1)::text, true);
    with x as (
      select cdc.uuidv7() as id, clock_timestamp() as at, pg_current_xact_id() as tx, %3$s as type,
             coalesce((select max(s.version) from cdc.event_store s where s.aggregate_type = %1$L and s.aggregate_id = v_id), 0) + 1 as v
    ), e as (
      select x.id, x.at, x.tx, x.v, x.type, t.text, t.text::jsonb as payload from x, lateral (select
        '{"id":"' || x.id || '","type":' || to_json(x.type) || %2$L || to_json(v_id) || '},"version":' || x.v
        || ',"tx":{"id":"' || x.tx || '","index":' || v_index
        || '},"occurredAt":"' || to_char(x.at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
        || '","actor":{"id":' || to_json(coalesce(nullif(current_setting('cdc.actor', true), ''), session_user::text))
        || ',"source":' || to_json(coalesce(nullif(current_setting('cdc.source', true), ''), 'sql'))
        || '},"reason":' || coalesce(to_json(nullif(current_setting('cdc.reason', true), ''))::text, 'null')
        || ',"correlationId":' || coalesce(to_json(nullif(current_setting('cdc.correlation_id', true), ''))::text, 'null')
        || ',"causationId":' || coalesce(to_json(nullif(current_setting('cdc.causation_id', true), ''))::text, 'null')
        || ',"changes":' || %4$s || ',"before":' || coalesce((%5$s)::text, 'null') || ',"after":' || coalesce((%6$s)::text, 'null')
        || ',"schema":1}' as text) t
    ), stored as (
      insert into cdc.event_store (id, aggregate_type, aggregate_id, version, type, tx_id, occurred_at, payload)
      select id, %1$L, v_id, v, type, tx, at, payload from e
    )
    %7$s$f$,
    p_table, format(',"op":"%s","aggregate":{"type":%s,"id":', p_op, to_json(p_table)), p_type, format('(%s)::text', p_changes),
    p_before, p_after,
    case when p_mode = 'emit' then
      -- emit mode: the outbox and its wake-up are not needed; the relay reads the WAL message
      'select pg_logical_emit_message(true, ''cdc'', text) into v_x from e;'
    else
      'insert into cdc.outbox (event_id, tx_id, aggregate_type, aggregate_id, version, type, occurred_at, payload)
    select id, tx, ' || quote_literal(p_table) || ', v_id, v, type, at, payload from e;
    if v_index = 0 then perform pg_notify(''cdc_outbox'', ''''); end if;'
    end)
$gen$;

-- The version probe (max(version) of the aggregate) must always use the unique index. A session caches the plan of
-- a trigger's statements; planned while cdc.event_store was still small (a fresh install, or analyzed while empty),
-- the probe became a sequential scan that was kept as the table grew: a 2,000-row INSERT into a freshly tracked table
-- then cost up to 16 ms per row (quadratic). Every statement of these functions is a keyed lookup or an insert, so
-- switching sequential scans off for them is safe; measured cost of the SET clause: below the noise (~1 µs).
alter function cdc.track(text, jsonb) rename to track_generate;
create function cdc.track(p_table text, p_spec jsonb) returns jsonb language plpgsql as $$
declare v_result jsonb := cdc.track_generate(p_table, p_spec);
begin
  execute format('alter function cdc.%I() set enable_seqscan = off', 'capture_' || p_table);
  execute format('alter function cdc.%I(jsonb, int) set enable_seqscan = off', 'snapshot_' || p_table);
  return v_result;
end
$$;
alter function cdc.append(text, text, text, text, jsonb, jsonb, jsonb, jsonb, text) set enable_seqscan = off;
