select slot_name, plugin, database from pg_replication_slots where slot_name = $1
