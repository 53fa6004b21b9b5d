// The one lock that serializes changes to capture: migrators, track/untrack and migrate's capture install queue on it.
import type { Db } from '../clients/postgres.ts'

/** Transaction-level advisory lock key ('cdc' 01). */
export const MIGRATION_LOCK = 0x63646301

export async function lockMigrations(tx: Db) {
  await tx.query('select pg_advisory_xact_lock($1)', [MIGRATION_LOCK])
}
