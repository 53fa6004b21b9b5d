-- Logical capture applies a large source transaction in parts (docs/logical.md: "Large transactions"): how far the
-- one being applied got, so a replay after a crash resumes it instead of applying its first parts again.
alter table cdc.logical_slots
  add column partial_lsn pg_lsn,    -- commit LSN of the source transaction applied in part (null: none)
  add column partial_items int,     -- its items applied so far
  add column partial_index int;     -- its events made so far (the next event's index)
