-- Logical mode: the relay's publication (created when missing) with every table tracked in logical mode (tracking adds
-- a table in its own transaction; this repairs a publication dropped or made by hand).
select cdc.logical_publish($1) as publication,
       (select count(cdc.logical_publish($1, schema_name, table_name)) from cdc.tracked where mode = 'logical' and active) as tables
