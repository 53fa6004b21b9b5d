-- Appending events: the envelope, cdc.append (snapshots, root documents, cdc.emit) and the outbox's maintenance.
-- A definition file: `create or replace` only, re-applied by `cdc migrate` when it changes. Changing a function's
-- signature or removing one needs a numbered migration that drops the old one.
--
-- Who/why: SET LOCAL cdc.actor / cdc.reason / cdc.correlation_id / cdc.causation_id / cdc.source ('api', 'sql',
-- 'snapshot'); an empty string counts as unset. The actor falls back to the database user, the source to 'sql'.

-- UUIDv7 (RFC 9562): 48-bit Unix milliseconds, then the 74-bit random part (about 64 bits of entropy from random():
-- ids need uniqueness, not secrecy, and it is several times cheaper than gen_random_uuid()). One expression, no FROM:
-- the planner inlines it into the capture statements (a FROM clause made every event pay a function execution).
create or replace function cdc.uuidv7() returns uuid language sql volatile parallel safe as $$
  select encode(int8send((floor(extract(epoch from clock_timestamp()) * 1000)::bigint << 16) | 28672 | floor(random() * 4096)::int)
             || int8send((random() * 4611686018427387903)::bigint | (-9223372036854775808)::bigint), 'hex')::uuid
$$;

-- The envelope of a given who/why (actor and source resolved; reason and ids null when unset): the logical apply
-- step's set-based capture has one per source transaction, not the session's.
create or replace function cdc.envelope_of(
  p_id uuid, p_type text, p_op text, p_aggregate_type text, p_aggregate_id text, p_version bigint, p_tx xid8,
  p_index int, p_at timestamptz, p_changes text, p_before text, p_after text,
  p_actor text, p_source text, p_reason text, p_correlation_id text, p_causation_id text
) returns text language sql stable as $$
  select '{"id":"' || p_id || '","type":' || to_json(p_type) || ',"op":"' || p_op || '","aggregate":{"type":'
    || to_json(p_aggregate_type) || ',"id":' || to_json(p_aggregate_id) || '},"version":' || p_version
    || ',"tx":{"id":"' || p_tx || '","index":' || p_index
    || '},"occurredAt":"' || to_char(p_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
    || '","actor":{"id":' || to_json(p_actor) || ',"source":' || to_json(p_source)
    || '},"reason":' || coalesce(to_json(p_reason)::text, 'null')
    || ',"correlationId":' || coalesce(to_json(p_correlation_id)::text, 'null')
    || ',"causationId":' || coalesce(to_json(p_causation_id)::text, 'null')
    || ',"changes":' || p_changes || ',"before":' || coalesce(p_before, 'null') || ',"after":' || coalesce(p_after, 'null')
    || ',"schema":1}'
$$;

-- The envelope as JSON text, in its documented key order (strings through to_json, so they are escaped), of the
-- writer's who/why in this transaction (above). changes, before and after come as JSON text. One SELECT without FROM
-- (as cdc.envelope_of): the planner inlines it into the caller's expression. Built as text, parsed once into jsonb for
-- the event store: cheaper than nested jsonb_build_object calls, and emit mode sends that same text as the WAL message.
create or replace function cdc.envelope(
  p_id uuid, p_type text, p_op text, p_aggregate_type text, p_aggregate_id text, p_version bigint, p_tx xid8,
  p_index int, p_at timestamptz, p_changes text, p_before text, p_after text
) returns text language sql stable as $$
  select cdc.envelope_of(p_id, p_type, p_op, p_aggregate_type, p_aggregate_id, p_version, p_tx, p_index, p_at, p_changes, p_before,
    p_after, coalesce(nullif(current_setting('cdc.actor', true), ''), session_user::text),
    coalesce(nullif(current_setting('cdc.source', true), ''), 'sql'), nullif(current_setting('cdc.reason', true), ''),
    nullif(current_setting('cdc.correlation_id', true), ''), nullif(current_setting('cdc.causation_id', true), ''))
$$;

-- Appends one event (cdc.emit, snapshots, root documents, split updates): the same steps as the generated triggers (cdc.append_sql
-- in track.sql). Callers serialize writers of one aggregate (row lock of a tracked row, or the advisory lock of
-- cdc.emit). enable_seqscan = off: the version probe must always use the unique index, even in a plan cached while
-- the event store was small. Logical mode: in a writer's transaction the request goes to the WAL (message
-- 'cdc.append', after the writer's context) and the relay appends it in commit order (the result carries no id); in
-- the relay's apply step (cdc.commit_lsn set) id, time and transaction come from the source transaction's commit.
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
  perform cdc.publish(v_id, v_tx, v_text, p_mode, v_index = 0);
  return v_event;
end
$$;

-- Hands a stored event to the relay: an outbox row (outbox mode, waking an idle poll relay when p_wake and it asked
-- for it) or the WAL message (emit mode). Nothing in logical mode (the relay wrote it) and 'store' (an aggregate
-- root's event, published at commit by cdc.fold_document once it carries the document).
create or replace function cdc.publish(p_id uuid, p_tx xid8, p_text text, p_mode text, p_wake boolean) returns void
language plpgsql as $$
begin
  if p_mode = 'emit' then
    perform pg_logical_emit_message(true, 'cdc', p_text);
  elsif p_mode = 'outbox' then
    insert into cdc.outbox (event_id, tx_id) values (p_id, p_tx);
    if p_wake and pg_sequence_last_value('cdc.relay_wake') = 1 then perform pg_notify('cdc_outbox', ''); end if;
  end if;
end
$$;

-- Application-level event (op "m") on the same path and version sequence as row changes.
create or replace function cdc.emit(aggregate_type text, aggregate_id text, type text, payload jsonb) returns uuid
language plpgsql as $$
declare v_table record;
begin
  -- a tracked table by its canonical name (`app."LineItems"`), or a lower-case name of an aggregate without a table
  select t.schema_name, t.table_name, t.key_columns, t.active into v_table from cdc.tracked t where t.aggregate_type = emit.aggregate_type;
  if not found and emit.aggregate_type !~ '^[a-z_][a-z0-9_]{0,62}$' then
    raise exception 'cdc.emit: aggregate_type % is neither a tracked table nor a lower-case identifier', emit.aggregate_type using errcode = '22023';
  end if;
  if type !~ '^[A-Z][A-Za-z0-9]{0,99}$' then
    raise exception 'cdc.emit: type % is not a PascalCase event type', type using errcode = '22023';
  end if;
  if coalesce(aggregate_id, '') = '' then
    raise exception 'cdc.emit: aggregate_id must not be empty' using errcode = '22023';
  end if;
  -- serializes concurrent emitters of one aggregate; on a tracked table also lock the row (if it exists), the lock
  -- its row writers take, so their versions and ours never collide
  perform pg_advisory_xact_lock(hashtextextended(emit.aggregate_type || '/' || aggregate_id, 0));
  if v_table.active then
    execute cdc.lock_row_sql(v_table.schema_name, v_table.table_name, v_table.key_columns) using aggregate_id;
  end if;
  return (cdc.append(emit.aggregate_type, aggregate_id, 'm', type, '[]'::jsonb, null, null, payload,
    (select value from cdc.settings where key = 'mode'))->>'id')::uuid;
end
$$;

-- The poll relay, before it sleeps: arm the wake-up, then return a horizon, an xid assigned after arming. A writer
-- checks the flag after its first write, so one that saw it unarmed holds a smaller xid: once no transaction older
-- than the horizon runs, every commit that did not NOTIFY is visible to the relay. (A NOTIFY makes its transaction
-- hold a database-wide lock until its commit is flushed, so writers notify only while the relay asks for it.)
create or replace function cdc.arm_relay_wake() returns text language sql volatile as $$
  select setval('cdc.relay_wake', 1);
  select pg_current_xact_id()::text;
$$;

-- Safety valve for the outbox (normally the relay deletes each row once Kafka acknowledged it): if no relay runs for a
-- long time, drop outbox rows older than the given age so the table stays small. The events stay in cdc.event_store;
-- cdc.requeue(since) puts them back into the outbox when a relay is back. Returns the number of rows dropped.
create or replace function cdc.trim_outbox(older_than interval) returns bigint language sql as $$
  with gone as (
    delete from cdc.outbox o using cdc.event_store e
     where e.id = o.event_id and e.occurred_at < now() - older_than
    returning 1)
  select count(*) from gone
$$;

-- Re-enqueues stored events that occurred at or after `since` and are not in the outbox (consumers deduplicate by id),
-- with every other event of their transactions: the relay publishes whole transactions and counts tx.size from them.
create or replace function cdc.requeue(since timestamptz) returns bigint language sql as $$
  with queued as (
    insert into cdc.outbox (event_id, tx_id)
    select e.id, e.tx_id
      from cdc.event_store e
     where e.tx_id in (select s.tx_id from cdc.event_store s where s.occurred_at >= since)
       and not exists (select 1 from cdc.outbox o where o.event_id = e.id)
     order by e.occurred_at, e.tx_id, (e.payload->'tx'->>'index')::int
    returning 1)
  select count(*) from queued
$$;
