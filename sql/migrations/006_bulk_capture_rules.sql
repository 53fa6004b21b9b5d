-- The set-based capture's generator (cdc.logical_bulk_source, sql/definitions/logical.sql) takes the table's
-- bookkeeping columns and rules now: its earlier signatures go.
drop function if exists cdc.logical_bulk_source(text, text, text, text, text, text[], text[]);
drop function if exists cdc.logical_bulk_source(text, text, text, text, text, text[], text[], text[]);
