-- Whether a transaction older than the horizon (see arm-wake.sql) still runs: one that saw the wake-up flag unarmed may
-- commit without a NOTIFY, so the relay keeps looking until none is left. Cluster-wide: an unrelated long transaction
-- keeps the relay polling (with growing pauses) instead of sleeping until a NOTIFY.
select pg_snapshot_xmin(pg_current_snapshot()) < $1::text::xid8 as running
