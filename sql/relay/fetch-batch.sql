-- The next batch in seq order, made of whole transactions: the transactions of the first $1 rows (with seq ≤ $2, and
-- not among $3: rows already being published or deleted), with every row of each (a transaction's rows commit
-- together, so one snapshot sees all of them or none).
with head as (
  select distinct tx_id from (
    select tx_id from cdc.outbox where seq <= $2 and seq <> all($3::bigint[]) order by seq limit $1
  ) first_rows
)
select o.seq, o.event_id::text as event_id, o.aggregate_type, o.aggregate_id, o.version, o.type,
       o.occurred_at, o.payload::text as payload
  from cdc.outbox o
 where o.tx_id in (select tx_id from head)
 order by o.seq
