-- Backlog size and the age of the oldest unpublished event (seconds; 0 when empty).
select count(*)::int as backlog,
       coalesce(extract(epoch from clock_timestamp() - min(occurred_at)), 0)::float8 as lag_seconds
  from cdc.outbox
