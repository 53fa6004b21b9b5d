-- A persistent slot: it survives disconnects and crashes, unlike postgres.js's temporary one.
select lsn::text from pg_create_logical_replication_slot($1, 'pgoutput')
