-- The next batch in seq order, made of whole transactions: the transactions of the first $1 rows (with seq ≤ $2, and
-- not among $3: rows already being published or deleted), with every row of each (a transaction's rows commit
-- together, so one snapshot sees all of them or none). The envelope and routing fields come from the event store,
-- written in the same transaction; an outbox row without its event (deleted by hand) has nothing to publish and only
-- goes away with the batch. The head's transactions as an array, not `in (subquery)`: the planner then reads their rows
-- by outbox_tx_id_idx and their events by key, whatever the statistics say; with `in` it scanned the whole outbox
-- (and, with stale statistics, hashed the whole event store) for every batch: a backlog drained in quadratic time.
with head as (
  select distinct tx_id from (
    select tx_id from cdc.outbox where seq <= $2 and seq <> all($3::bigint[]) order by seq limit $1
  ) first_rows
)
select o.seq, e.id::text as event_id, e.aggregate_type, e.aggregate_id, e.version, e.type, e.payload::text as payload
  from cdc.outbox o left join cdc.event_store e on e.id = o.event_id
 where o.tx_id = any(array(select tx_id from head))
 order by o.seq
