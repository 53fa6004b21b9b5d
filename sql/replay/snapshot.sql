-- The replay's start: every event this snapshot does not see committed later, and is applied again after the swap.
select pg_current_snapshot()::text as snapshot
