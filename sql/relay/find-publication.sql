select 1 as found from pg_publication where pubname = $1
