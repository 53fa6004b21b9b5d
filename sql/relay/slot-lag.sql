-- How much WAL the relay's slot holds back (bytes between the server's current position and what the slot confirmed).
select pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::float8 as bytes, active
  from pg_replication_slots
 where slot_name = $1
