-- Whether any transaction in progress in the given snapshot still runs (one that saw the wake-up flag unarmed may
-- commit without a NOTIFY, so the relay keeps looking until none is left).
select exists (
  select 1 from unnest(pg_snapshot_xip($1::text::pg_snapshot)) x where pg_xact_status(x) = 'in progress'
) as running
