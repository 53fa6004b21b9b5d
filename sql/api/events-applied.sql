-- Logical mode: the application event the relay appended for a writer's transaction (found through the unique index's
-- aggregate prefix), once it has applied that transaction.
select id::text as id, version::int as version from cdc.event_store
 where aggregate_type = $1 and aggregate_id = $2 and tx_id = $3::xid8 and type = $4
 order by version desc limit 1
