-- The version cdc.emit assigned (a separate statement: the emitting one's snapshot does not see its own insert).
select version::int as version from cdc.event_store where id = $1
