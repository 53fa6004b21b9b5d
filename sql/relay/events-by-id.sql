-- WAL mode: the envelopes and routing fields of the events whose outbox rows the stream delivered.
select id::text as event_id, aggregate_type, aggregate_id, version, type, payload::text as payload
  from cdc.event_store where id = any($1::uuid[])
