-- `cdc status`: per tracked table, the events captured, the last one's time and the events still waiting in the
-- outbox for the relay (poll mode and outbox capture; emit mode queues nothing there).
select t.aggregate_type, t.schema_name, t.table_name, t.mode, t.active, t.key_columns, t.key_source,
       to_char(t.tracked_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') as tracked_at,
       coalesce(e.events, 0) as events,
       to_char(e.last_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as last_event_at,
       coalesce(o.backlog, 0) as backlog
  from cdc.tracked t
  left join lateral (select count(*) as events, max(s.occurred_at) as last_at
                       from cdc.event_store s where s.aggregate_type = t.aggregate_type) e on true
  left join lateral (select count(*) as backlog
                       from cdc.outbox q join cdc.event_store s on s.id = q.event_id
                      where s.aggregate_type = t.aggregate_type) o on true
 order by t.aggregate_type
