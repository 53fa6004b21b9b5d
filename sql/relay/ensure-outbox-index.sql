-- Batches select whole transactions by tx_id; without this index each batch scans the whole backlog. Concurrently, so
-- a relay starting on a large backlog never blocks writers. (Better still in a capture migration: then this is a no-op.)
create index concurrently if not exists outbox_tx_id_idx on cdc.outbox (tx_id)
