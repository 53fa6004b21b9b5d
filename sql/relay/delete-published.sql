-- Rows Kafka acknowledged.
delete from cdc.outbox where seq = any($1::bigint[])
