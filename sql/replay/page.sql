-- The next page of one table's events in (aggregate, version) order after the cursor ($2, $3): keyset paging served by
-- the unique index (aggregate_type, aggregate_id, version).
select aggregate_id, version, tx_id::text as tx_id, payload::text as payload
  from cdc.event_store
 where aggregate_type = $1 and (aggregate_id, version) > ($2::text, $3::bigint)
 order by aggregate_id, version
 limit $4
