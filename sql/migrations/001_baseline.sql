-- The capture tables. Tables and data changes live in numbered migrations, applied once and never edited (add a new
-- file instead); the functions, generators and triggers that work on them live in sql/definitions/ (re-applied by
-- `cdc migrate` whenever their text changes).

-- Permanent, append-only: every event, its envelope in payload.
create table cdc.event_store (
  id uuid primary key,
  aggregate_type text not null,
  aggregate_id text not null,
  version bigint not null,
  type text not null,
  tx_id xid8 not null,
  occurred_at timestamptz not null,
  payload jsonb not null,
  -- also the index behind "next version = max + 1"
  unique (aggregate_type, aggregate_id, version)
);

-- Transient: the poll relay publishes whole transactions and deletes their rows once Kafka acknowledged them. Only
-- what orders and identifies the work: the envelope is read from cdc.event_store (written in the same transaction).
create table cdc.outbox (
  seq bigint generated always as identity primary key,
  event_id uuid not null,
  tx_id xid8 not null
);
-- the relay selects whole transactions by tx_id
create index outbox_tx_id_idx on cdc.outbox (tx_id);

-- 1 = the poll relay sleeps and wants a NOTIFY; anything else (0, or never set: null) = no NOTIFY needed.
-- A sequence: read without locks or snapshots, and its setval is seen at once.
create sequence cdc.relay_wake minvalue 0 maxvalue 1 start 0;

-- Tables with capture installed, and the spec their trigger function was generated from.
create table cdc.tracked (
  table_name text primary key,
  spec jsonb not null,
  tracked_at timestamptz not null default now()
);

-- capture.mode as last applied by migrate: 'outbox' or 'emit' (read by cdc.emit).
create table cdc.settings (
  key text primary key,
  value text not null
);
insert into cdc.settings values ('mode', 'outbox');

-- Resumable snapshot cursors: the key of the last row emitted, per table.
create table cdc.snapshot_cursors (
  table_name text primary key,
  last_key jsonb,
  rows bigint not null default 0,
  done boolean not null default false,
  updated_at timestamptz not null default now()
);
