-- Backlog size and the age of the event at the head of the outbox (seconds; 0 when empty).
select (select count(*) from cdc.outbox)::int as backlog,
       coalesce((select extract(epoch from clock_timestamp() - e.occurred_at)
                   from cdc.outbox o join cdc.event_store e on e.id = o.event_id order by o.seq limit 1), 0)::float8 as lag_seconds
