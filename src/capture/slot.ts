// Logical mode's persistent replication slot. It must exist before a table is tracked: a slot decodes only what
// commits after its creation, so `cdc migrate` / `cdc track` create it first and every change made once a table is
// tracked is in the WAL the relay reads. A slot recorded before and now missing (dropped, or invalidated by
// max_slot_wal_keep_size) is never silently re-created: what was written meanwhile is gone from the WAL.
import findSlotSql from '../../sql/relay/find-slot.sql' with { type: 'text' }
import createSlotSql from '../../sql/relay/create-slot.sql' with { type: 'text' }
import slotStateSql from '../../sql/relay/logical-slot-state.sql' with { type: 'text' }
import slotRecordSql from '../../sql/relay/logical-slot-record.sql' with { type: 'text' }
import publishTrackedSql from '../../sql/relay/logical-publish-tracked.sql' with { type: 'text' }
import { isDbError, type Db } from '../clients/postgres.ts'
import type { Logger } from '../log.ts'

const DUPLICATE_OBJECT = '42710'

/** Creates the slot when this database never had it; 'lost' when it had it and it is gone (recorded as such). */
export async function ensureLogicalSlot(db: Db, slot: string, publication: string, log: Logger): Promise<'ok' | 'lost'> {
  // The publication first: pgoutput looks it up as of each decoded change, and fails on changes older than it.
  await db.query(publishTrackedSql, [publication])
  const [existing] = await db.query<{ plugin: string }>(findSlotSql, [slot])
  if (existing && existing.plugin !== 'pgoutput') throw new Error(`replication slot ${slot} uses ${existing.plugin}, not pgoutput`)
  const [recorded] = await db.query<{ state: string }>(slotStateSql, [slot])
  if (recorded?.state === 'lost' || (!existing && recorded)) {
    await db.query(slotRecordSql, [slot, 'lost'])
    return 'lost'
  }
  if (!existing) {
    const [created] = await db.query<{ lsn: string }>(createSlotSql, [slot]).catch((error) => {
      if (isDbError(error, DUPLICATE_OBJECT)) return []
      throw error
    })
    if (created) log.info('replication slot created', { slot, lsn: created.lsn })
  }
  if (!recorded) await db.query(slotRecordSql, [slot, 'ok'])
  return 'ok'
}
