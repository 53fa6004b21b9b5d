-- Slot metrics: bytes of WAL not yet confirmed, bytes retained for the slot, confirmed position, and the server's
-- verdict on the slot ('lost' once max_slot_wal_keep_size invalidated it).
select pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::float8 as lag_bytes,
       pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::float8 as retained_bytes,
       pg_wal_lsn_diff(confirmed_flush_lsn, '0/0')::float8 as confirmed_lsn,
       wal_status
  from pg_replication_slots where slot_name = $1
