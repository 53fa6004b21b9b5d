// History retention: removes whole UTC days of a table's history older than a cut-off, optionally archiving them
// first as JSON Lines (one file per table and day, the API's item shape). Days are found in the day-bucket registry
// and deleted by the indexed `day` key, so a prune never scans the collection. Documents written before the read
// keys existed carry no `day`: run `cdc backfill` first. The outcome log prunes itself (consume.outcomeRetentionDays).
import { mkdir, rename } from 'node:fs/promises'
import type { Store } from '../clients/mongo.ts'
import { daysOf, forgetDays, historyCollection, toHistoryItem } from './history.ts'

export interface PruneOptions {
  /** Days strictly before the UTC day `olderThanDays` before `now` are removed. */
  olderThanDays: number
  now?: number
  /** Directory for `<table>/<day>.jsonl` archives, written (and renamed into place) before the day is deleted. */
  archiveDir?: string
  progress?: (p: { table: string; day: string; deleted: number }) => void
}

export interface PruneResult {
  table: string
  /** The first day kept. */
  keepFrom: string
  days: string[]
  deleted: number
  archived: number
}

export async function pruneHistory(store: Store, table: string, o: PruneOptions): Promise<PruneResult> {
  const keepFrom = new Date((o.now ?? Date.now()) - o.olderThanDays * 86_400_000).toISOString().slice(0, 10)
  const days = (await daysOf(store, table, null)).filter((d) => d < keepFrom)
  const collection = store.collection(historyCollection(table))
  const result: PruneResult = { table, keepFrom, days, deleted: 0, archived: 0 }
  for (const day of days) {
    let deleted = 0
    if (o.archiveDir === undefined) deleted = await collection.deleteMany({ day })
    else {
      // Only what the archive holds: an event of that day stored meanwhile stays for the next run.
      const ids = await archiveDay(store, table, day, o.archiveDir)
      result.archived += ids.length
      for (let i = 0; i < ids.length; i += 1000) deleted += await collection.deleteMany({ day, _id: { $in: ids.slice(i, i + 1000) } })
    }
    result.deleted += deleted
    o.progress?.({ table, day, deleted })
  }
  // A day's bucket goes once nothing of it is left (an event stored during its archiving stays listed).
  const emptied = new Set<string>()
  for (const day of days) if ((await collection.findOne({ day })) === null) emptied.add(day)
  if (emptied.size > 0) await forgetDays(store, table, emptied)
  return result
}

/** Writes one day of history to `<dir>/<table>/<day>.jsonl` (complete or not at all); returns the event ids written. */
async function archiveDay(store: Store, table: string, day: string, dir: string): Promise<string[]> {
  const folder = `${dir}/${encodeURIComponent(table)}`
  await mkdir(folder, { recursive: true })
  const path = `${folder}/${day}.jsonl`
  const writer = Bun.file(`${path}.partial`).writer()
  const ids: string[] = []
  try {
    for await (const batch of store.collection(historyCollection(table)).scan({ day }, { batchSize: 1000 })) {
      for (const doc of batch) {
        writer.write(`${JSON.stringify(toHistoryItem(doc))}\n`)
        ids.push(doc._id as string)
      }
      await writer.flush()
    }
  } finally {
    await writer.end()
  }
  await rename(`${path}.partial`, path)
  return ids
}
