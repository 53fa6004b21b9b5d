select coalesce(upto, (select coalesce(max(seq), 0) from cdc.outbox)) as upto from cdc.relay_slot_backfill where slot = $1
