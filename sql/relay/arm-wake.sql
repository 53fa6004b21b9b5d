-- Before the relay sleeps: writers NOTIFY from now on (cdc.relay_wake = 1). Returns the horizon (see the function).
select cdc.arm_relay_wake() as horizon
