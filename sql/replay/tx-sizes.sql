-- tx.size for a replay (the event store keeps envelopes without it; the relay adds it when it publishes): the number
-- of events of each source transaction that wrote an event of table $1, or only of the transactions $2 when given.
-- One pass over the event store (it has no index on tx_id: one would cost every captured row a write).
select tx_id::text as tx_id, count(*)::int as n
  from cdc.event_store
 where tx_id in (select s.tx_id from cdc.event_store s where s.aggregate_type = $1 and ($2::xid8[] is null or s.tx_id = any($2::xid8[])))
 group by tx_id
