-- Run by `cdc migrate` before the numbered migrations (under the migration lock): where applied migrations are recorded.
create schema if not exists cdc;
create table if not exists cdc.migrations (
  name text primary key,
  checksum text not null,
  applied_at timestamptz not null default now()
);
