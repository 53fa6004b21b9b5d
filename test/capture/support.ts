// Shared by the capture tests: a migrated test database and readers of what the triggers wrote.
import * as v from 'valibot'
import { createTestEnv, type TestEnv } from '../support/env.ts'
import { migrate } from '../../src/capture/migrate.ts'
import type { Config } from '../../src/config.ts'
import type { Db } from '../../src/clients/postgres.ts'
import { EventSchema, type CdcEvent } from '../../src/events.ts'

export async function migratedEnv(overrides: (c: Config) => void = () => {}): Promise<TestEnv> {
  const env = await createTestEnv(overrides)
  await migrate(env.rt)
  return env
}

/** Every stored event (validated against the envelope schema), in aggregate then version order. */
export async function storedEvents(db: Db, aggregateType?: string): Promise<CdcEvent[]> {
  const rows = await db.query<{ payload: unknown }>(
    `select payload from cdc.event_store where $1::text is null or aggregate_type = $1
      order by aggregate_type, aggregate_id, version`,
    [aggregateType ?? null],
  )
  return rows.map((r) => v.parse(EventSchema, r.payload))
}

/**
 * Runs `fn` while a test_decoding slot is open and returns the logical messages it decoded: the decoder's line
 * (`message: transactional: 1 prefix: cdc, …`) and the parsed content. The slot is dropped afterwards.
 */
export async function decodedMessages(db: Db, slot: string, fn: () => Promise<void>): Promise<{ data: string; content: unknown }[]> {
  await db.query(`select pg_create_logical_replication_slot($1, 'test_decoding')`, [slot])
  try {
    await fn()
    const rows = await db.query<{ data: string }>(`select data from pg_logical_slot_get_changes($1, null, null) where data like 'message:%'`, [slot])
    return rows.map(({ data }) => ({ data, content: JSON.parse(data.slice(data.indexOf('content:') + 'content:'.length)) }))
  } finally {
    await db.query('select pg_drop_replication_slot($1)', [slot])
  }
}

/** Runs `fn` in a transaction after setting the given cdc.* settings (as the API does with SET LOCAL). */
export function withSettings<T>(db: Db, settings: Record<string, string>, fn: (tx: Db) => Promise<T>): Promise<T> {
  return db.begin(async (tx) => {
    for (const [key, value] of Object.entries(settings)) await tx.query('select set_config($1, $2, true)', [`cdc.${key}`, value])
    return fn(tx)
  })
}
