-- The tables of logical capture (capture.mode = 'logical', docs/logical.md; its functions: sql/definitions/logical.sql).

-- The last full row image of every captured row (unmasked, all columns, column → the type's text output; json and
-- jsonb columns as JSON): the before image of the next UPDATE/DELETE, which the WAL carries only as the key under
-- REPLICA IDENTITY DEFAULT, and the source of unchanged TOASTed values. Written by the relay only. Holds what the
-- tracked tables hold: grant access to schema cdc as to those tables.
create table cdc.logical_images (
  rel text not null,     -- schema.table
  key text not null,     -- JSON array of the key columns' text values (the relay's encoding)
  image jsonb not null,
  primary key (rel, key)
);

-- Per slot: the commit LSN of the last source transaction applied to the event store (replays skip up to it) and
-- the state the relay found the slot in ('lost' stops the relay loudly until an operator re-snapshots).
create table cdc.logical_slots (
  slot text primary key,
  applied_lsn pg_lsn not null default '0/0',
  state text not null default 'ok',
  created_at timestamptz not null default now()
);
