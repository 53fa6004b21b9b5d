-- Run by `cdc migrate` before anything else (under the migration lock): where applied migrations and definitions are
-- recorded.
create schema if not exists cdc;
create table if not exists cdc.migrations (
  name text primary key,
  checksum text not null,
  applied_at timestamptz not null default now()
);
-- sql/definitions/<name>.sql as last applied: re-applied when the file's checksum differs.
create table if not exists cdc.definitions (
  name text primary key,
  checksum text not null,
  applied_at timestamptz not null default now()
);
