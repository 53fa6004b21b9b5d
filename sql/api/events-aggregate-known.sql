-- Whether a row aggregate has any event (it exists or existed): application events about unknown rows are refused.
select exists (select 1 from cdc.event_store where aggregate_type = $1 and aggregate_id = $2) as known
