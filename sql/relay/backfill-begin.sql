insert into cdc.relay_slot_backfill (slot, upto) values ($1, null) on conflict (slot) do update set upto = null
