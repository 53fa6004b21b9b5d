delete from cdc.relay_slot_backfill where slot = $1
