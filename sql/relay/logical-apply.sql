-- Logical mode: apply a batch of decoded source transactions to the event store and return their events in order
-- (cdc.logical_apply in sql/definitions/logical.sql; idempotent on replay).
select event_id, aggregate_type, aggregate_id, version, type, payload from cdc.logical_apply($1, $2::text::jsonb)
