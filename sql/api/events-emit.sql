-- POST /events: an application event through cdc.emit (same version sequence, who/why, event store and outbox or WAL
-- message as row changes); returns its id. The write context is set before, in the same transaction.
select cdc.emit($1, $2, $3, $4::text::jsonb) as id
