-- Before the relay sleeps: writers NOTIFY from now on (cdc.relay_wake = 1). Returns a snapshot taken after arming:
-- its in-progress transactions may have looked at the flag before, and commit without a NOTIFY.
select cdc.arm_relay_wake() as snapshot
