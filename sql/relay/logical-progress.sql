-- Logical mode: how far an earlier attempt applied a large source transaction (cdc.logical_progress in
-- sql/definitions/logical.sql).
select applied, events from cdc.logical_progress($1, $2::pg_lsn)
