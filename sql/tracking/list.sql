-- The tracked set as every role reads it (src/tracked-set.ts): tables tracked now, and untracked ones (their history
-- stays readable and their last events still flow).
select aggregate_type, schema_name, table_name, key_columns, mode, active, spec,
       array(select a.attname::text from pg_attribute a
              where a.attrelid = to_regclass(format('%I.%I', schema_name, table_name)) and a.attnum > 0 and not a.attisdropped
              order by a.attnum) as columns,
       to_char(tracked_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as tracked_at,
       to_char(untracked_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as untracked_at
  from cdc.tracked
 order by aggregate_type
