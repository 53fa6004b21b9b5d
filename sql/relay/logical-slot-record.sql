-- Logical mode: the relay's slot exists (or just got created) and is healthy, or it found it lost.
insert into cdc.logical_slots as s (slot, state) values ($1, $2) on conflict (slot) do update set state = excluded.state
