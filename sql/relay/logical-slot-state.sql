-- Logical mode: what the relay recorded about its slot (null: never created by a relay of this database).
select state from cdc.logical_slots where slot = $1
