-- The writing transaction's id (logical mode: how the relay's events of this transaction are found afterwards).
select pg_current_xact_id()::text as tx
