-- Logical mode: events $3 … $3 + $4 - 1 of the source transaction committed at $1 (time $2), in order.
select event_id, aggregate_type, aggregate_id, version, type, payload from cdc.logical_events($1::pg_lsn, $2::timestamptz, $3, $4)
