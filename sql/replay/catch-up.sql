-- The catch-up after the swap: one table's events that the replay's start snapshot ($2) did not see (committed during
-- the replay, or in flight when it began), in (aggregate, version) order after the cursor ($3, $4).
select aggregate_id, version, payload::text as payload
  from cdc.event_store
 where aggregate_type = $1 and (aggregate_id, version) > ($3::text, $4::bigint)
   and not pg_visible_in_snapshot(tx_id, $2::text::pg_snapshot)
 order by aggregate_id, version
 limit $5
