-- The catch-up after the swap: one table's events that the replay's start snapshot ($2) did not see, in (aggregate,
-- version) order after the cursor ($3, $4). "Did not see" is asked of the capturing transaction (tx_id: exact in
-- outbox and emit mode, where the row is written by it) and of the transaction that wrote the row (xmin: in logical
-- mode the relay writes it later, in a transaction of its own). xmin is a 32-bit xid: it is compared with the
-- snapshot's xmax and in-progress list taken modulo 2^32, as PostgreSQL compares xids (a frozen row counts as old). A row
-- counted new by mistake is only applied once more, harmlessly.
with snap as (
  select pg_snapshot_xmax(s)::text::bigint % 4294967296 as xmax32,
         array(select x::text::bigint % 4294967296 from pg_snapshot_xip(s) x) as xip32
    from (select $2::text::pg_snapshot as s) t
)
select e.aggregate_id, e.version, e.tx_id::text as tx_id, e.payload::text as payload
  from cdc.event_store e, snap
 where e.aggregate_type = $1 and (e.aggregate_id, e.version) > ($3::text, $4::bigint)
   and (not pg_visible_in_snapshot(e.tx_id, $2::text::pg_snapshot)
        or e.xmin::text::bigint = any(snap.xip32)
        or ((e.xmin::text::bigint - snap.xmax32) & 4294967295) < 2147483648)
 order by e.aggregate_id, e.version
 limit $5
