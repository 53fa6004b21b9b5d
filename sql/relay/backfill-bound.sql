-- Everything committed before the slot's consistent point is visible now, so its seq is at most this.
update cdc.relay_slot_backfill set upto = (select coalesce(max(seq), 0) from cdc.outbox) where slot = $1
