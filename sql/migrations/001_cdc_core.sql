-- The capture machinery: event store, outbox, per-aggregate versions, who/why from SET LOCAL cdc.*, cdc.emit().
--
-- aggregate.id encoding: a single-column primary key is its value as text ('42'). A composite key is the text of each
-- column in key order, each with '%' → '%25' and ':' → '%3A', joined by ':' ('7:a%3Ab' = (7, 'a:b')). Stable and
-- reversible; generated per table by cdc.track().
--
-- Who/why: SET LOCAL cdc.actor / cdc.reason / cdc.correlation_id / cdc.causation_id / cdc.source ('api', 'sql',
-- 'snapshot'); an empty string counts as unset. The actor falls back to the database user, the source to 'sql'.

create table cdc.event_store (
  id uuid primary key,
  aggregate_type text not null,
  aggregate_id text not null,
  version bigint not null,
  type text not null,
  tx_id xid8 not null,
  occurred_at timestamptz not null,
  payload jsonb not null,
  -- also the index behind "next version = max + 1"
  unique (aggregate_type, aggregate_id, version)
);

-- Transient: the relay publishes rows (whole transactions) and deletes them once Kafka acknowledged.
create table cdc.outbox (
  seq bigint generated always as identity primary key,
  event_id uuid not null,
  tx_id xid8 not null,
  aggregate_type text not null,
  aggregate_id text not null,
  version bigint not null,
  type text not null,
  occurred_at timestamptz not null,
  payload jsonb not null
);
-- the relay selects whole transactions by tx_id (same name as its own `create index if not exists`)
create index outbox_tx_id_idx on cdc.outbox (tx_id);

-- Tables with capture installed, and the spec their trigger function was generated from.
create table cdc.tracked (
  table_name text primary key,
  spec jsonb not null,
  tracked_at timestamptz not null default now()
);

-- capture.mode as last applied by migrate: 'outbox' or 'emit' (read by cdc.emit).
create table cdc.settings (
  key text primary key,
  value text not null
);
insert into cdc.settings values ('mode', 'outbox');

-- Resumable snapshot cursors: the key of the last row emitted, per table.
create table cdc.snapshot_cursors (
  table_name text primary key,
  last_key jsonb,
  rows bigint not null default 0,
  done boolean not null default false,
  updated_at timestamptz not null default now()
);

-- UUIDv7 (RFC 9562): 48-bit Unix milliseconds, then the 74-bit random part (about 64 bits of entropy from random():
-- ids need uniqueness, not secrecy, and it is several times cheaper than gen_random_uuid()). One expression, no FROM:
-- the planner inlines it into the capture statements (a FROM clause made every event pay a function execution).
create function cdc.uuidv7() returns uuid language sql volatile parallel safe as $$
  select encode(int8send((floor(extract(epoch from clock_timestamp()) * 1000)::bigint << 16) | 28672 | floor(random() * 4096)::int)
             || int8send((random() * 4611686018427387903)::bigint | (-9223372036854775808)::bigint), 'hex')::uuid
$$;

-- A transaction-local setting, empty = unset.
create function cdc.setting(name text) returns text language sql stable as $$
  select nullif(current_setting(name, true), '')
$$;

-- Appends one event: next gapless version of the aggregate, envelope, event store, and outbox row or WAL message.
-- Callers serialize writers of one aggregate (row lock of a tracked row, or the advisory lock of cdc.emit).
create function cdc.append(
  p_aggregate_type text, p_aggregate_id text, p_op text, p_type text,
  p_changes jsonb, p_before jsonb, p_after jsonb, p_data jsonb, p_mode text
) returns jsonb language plpgsql as $$
declare
  v_version bigint;
  v_index int := coalesce(nullif(current_setting('cdc.tx_index', true), ''), '0')::int;
  v_id uuid := cdc.uuidv7();
  v_at timestamptz := clock_timestamp();
  v_tx xid8 := pg_current_xact_id();
  v_event jsonb;
begin
  select coalesce(max(version), 0) + 1 into v_version
    from cdc.event_store where aggregate_type = p_aggregate_type and aggregate_id = p_aggregate_id;
  perform set_config('cdc.tx_index', (v_index + 1)::text, true);
  v_event := jsonb_build_object(
    'id', v_id, 'type', p_type, 'op', p_op,
    'aggregate', jsonb_build_object('type', p_aggregate_type, 'id', p_aggregate_id),
    'version', v_version,
    'tx', jsonb_build_object('id', v_tx::text, 'index', v_index),
    'occurredAt', to_char(v_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
    'actor', jsonb_build_object('id', coalesce(nullif(current_setting('cdc.actor', true), ''), session_user::text),
                                'source', coalesce(nullif(current_setting('cdc.source', true), ''), 'sql')),
    'reason', nullif(current_setting('cdc.reason', true), ''),
    'correlationId', nullif(current_setting('cdc.correlation_id', true), ''),
    'causationId', nullif(current_setting('cdc.causation_id', true), ''),
    'changes', p_changes, 'before', p_before, 'after', p_after, 'schema', 1);
  if p_op = 'm' then v_event := v_event || jsonb_build_object('data', p_data); end if;
  insert into cdc.event_store (id, aggregate_type, aggregate_id, version, type, tx_id, occurred_at, payload)
    values (v_id, p_aggregate_type, p_aggregate_id, v_version, p_type, v_tx, v_at, v_event);
  if p_mode = 'emit' then
    perform pg_logical_emit_message(true, 'cdc', v_event::text);
  else
    insert into cdc.outbox (event_id, tx_id, aggregate_type, aggregate_id, version, type, occurred_at, payload)
      values (v_id, v_tx, p_aggregate_type, p_aggregate_id, v_version, p_type, v_at, v_event);
    -- one wake-up per transaction is enough for the relay
    if v_index = 0 then perform pg_notify('cdc_outbox', ''); end if;
  end if;
  return v_event;
end
$$;

-- Application-level event (op "m") on the same path and version sequence as row changes.
create function cdc.emit(aggregate_type text, aggregate_id text, type text, payload jsonb) returns uuid
language plpgsql as $$
begin
  if aggregate_type !~ '^[a-z_][a-z0-9_]{0,62}$' then
    raise exception 'cdc.emit: aggregate_type % is not a lower-case identifier', aggregate_type using errcode = '22023';
  end if;
  if type !~ '^[A-Z][A-Za-z0-9]{0,99}$' then
    raise exception 'cdc.emit: type % is not a PascalCase event type', type using errcode = '22023';
  end if;
  if coalesce(aggregate_id, '') = '' then
    raise exception 'cdc.emit: aggregate_id must not be empty' using errcode = '22023';
  end if;
  -- serializes concurrent emitters of one aggregate; on a tracked table also lock the row (if it exists), the lock
  -- its row writers take, so their versions and ours never collide
  perform pg_advisory_xact_lock(hashtextextended(aggregate_type || '/' || aggregate_id, 0));
  if exists (select 1 from cdc.tracked t where t.table_name = emit.aggregate_type) then
    execute cdc.lock_row_sql(aggregate_type) using aggregate_id;
  end if;
  return (cdc.append(aggregate_type, aggregate_id, 'm', type, '[]'::jsonb, null, null, payload,
    (select value from cdc.settings where key = 'mode'))->>'id')::uuid;
end
$$;

-- Safety valve for the outbox (normally the relay deletes each row once Kafka acknowledged it): if no relay runs for a
-- long time, drop outbox rows older than the given age so the table stays small. The events stay in cdc.event_store;
-- cdc.requeue(since) puts them back into the outbox when a relay is back. Returns the number of rows dropped.
create function cdc.trim_outbox(older_than interval) returns bigint language sql as $$
  with gone as (delete from cdc.outbox where occurred_at < now() - older_than returning 1)
  select count(*) from gone
$$;

-- Re-enqueues stored events that occurred at or after `since` and are not in the outbox (consumers deduplicate by id).
create function cdc.requeue(since timestamptz) returns bigint language sql as $$
  with queued as (
    insert into cdc.outbox (event_id, tx_id, aggregate_type, aggregate_id, version, type, occurred_at, payload)
    select e.id, e.tx_id, e.aggregate_type, e.aggregate_id, e.version, e.type, e.occurred_at, e.payload
      from cdc.event_store e
     where e.occurred_at >= since and not exists (select 1 from cdc.outbox o where o.event_id = e.id)
     order by e.occurred_at, e.tx_id, (e.payload->'tx'->>'index')::int
    returning 1)
  select count(*) from queued
$$;
