-- The relay is awake: writers need not NOTIFY any more.
select setval('cdc.relay_wake', 0)
