-- WAL mode: a new slot only streams what commits after it; rows already in the outbox then are published the poll
-- way. This row remembers that duty (and up to which seq) across crashes until it is done.
create table if not exists cdc.relay_slot_backfill (
  slot text primary key,
  -- Highest outbox seq that may predate the slot; null until known (then: everything present counts).
  upto bigint
)
