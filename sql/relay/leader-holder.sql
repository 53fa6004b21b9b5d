-- Who holds this database's relay leadership lock (for a standby's log line): advisory locks are per database.
select l.pid, a.client_addr::text as address, a.backend_start
  from pg_locks l
  join pg_stat_activity a on a.pid = l.pid
 where l.locktype = 'advisory' and l.granted
   and l.database = (select oid from pg_database where datname = current_database())
   and l.classid = $1::bigint::oid and l.objid = $2::bigint::oid and l.objsubid = 2
