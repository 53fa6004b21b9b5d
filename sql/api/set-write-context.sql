-- Who and why for the capture trigger, transaction-local (is_local = true); values are parameters, never spliced.
-- Empty string means "not given" (capture reads them with nullif(current_setting(..., true), '')).
select set_config('cdc.actor', $1, true),
       set_config('cdc.reason', $2, true),
       set_config('cdc.correlation_id', $3, true),
       set_config('cdc.causation_id', $4, true),
       set_config('cdc.source', 'api', true)
