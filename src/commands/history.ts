// backfill and prune-history: maintenance of the MongoDB history collections.
import { backfillHistory, backfillState } from '../consume/backfill.ts'
import { pruneHistory } from '../consume/retention.ts'
import { canonicalName } from '../tables.ts'
import { consumedTables } from '../topics.ts'
import { UsageError } from '../errors.ts'
import { intFlag, stringFlag, type Command, type CommandContext } from './command.ts'

/** The named tables in any spelling (an untracked table keeps its history), or every consumed table. */
async function tablesOf(ctx: CommandContext, command: Command): Promise<string[]> {
  if (ctx.positionals.length > 0) {
    return ctx.positionals.map((t) => {
      try {
        return canonicalName(t)
      } catch (error) {
        throw new UsageError(`${t}: ${(error as Error).message}`, command.name)
      }
    })
  }
  const tracked = ctx.rt.tracked()
  await tracked.refresh()
  return consumedTables(ctx.rt.config, tracked.list())
}

/** Progress on stderr as JSON lines, at most once a second. */
function throttled<T>(write: (p: T) => void) {
  let last = 0
  return (p: T) => {
    if (Date.now() - last < 1000) return
    last = Date.now()
    write(p)
  }
}

export const backfill: Command = {
  name: 'backfill',
  summary: 'add the read keys (aggKey, day, actorDay, txId; find keys of states) to documents written before them (resumable)',
  usage: '[<table> …]',
  description:
    'Sets the top-level fields that make history reads index-served on every history document that lacks them, and records their day buckets (and the list of days of each table and actor, which audit search reads); sets the find keys (the console\'s find-by-value) on every state that lacks them. Run once after upgrading from a version without them; safe while the consumer runs; a second run finds nothing to do. Progress on stderr, one JSON result per table on stdout.',
  async run(ctx) {
    const store = await ctx.rt.mongo()
    for (const table of await tablesOf(ctx, backfill)) {
      const t0 = Date.now()
      const report = throttled((p) => console.error(JSON.stringify({ progress: p })))
      const result = await backfillHistory(store, table, report)
      const states = await backfillState(store, table, (p) => report({ ...p, of: 'state' }))
      console.log(JSON.stringify({ ...result, states: states.updated, seconds: (Date.now() - t0) / 1000 }))
    }
    return 0
  },
}

export const pruneHistoryCommand: Command = {
  name: 'prune-history',
  summary: 'delete (optionally archive) history older than N days, per table, in whole UTC days',
  usage: '--older-than-days N [--archive DIR] [<table> …]',
  description:
    'Removes the history events of every UTC day before (today - N days) from the named tables (default: every consumed table). With --archive DIR each day is first written to DIR/<table>/<day>.jsonl (API item shape) and only what was archived is deleted. The read model (<table>_state) is untouched. Run `cdc backfill` first on histories written before the read keys existed.',
  options: {
    'older-than-days': { type: 'string', placeholder: 'N', description: 'keep the last N days (required)' },
    archive: { type: 'string', placeholder: 'DIR', description: 'write each day to DIR/<table>/<day>.jsonl before deleting it' },
  },
  async run(ctx) {
    const olderThanDays = intFlag(ctx, 'older-than-days', pruneHistoryCommand)
    if (olderThanDays === undefined) throw new UsageError('--older-than-days is required', pruneHistoryCommand.name)
    const archiveDir = stringFlag(ctx, 'archive')
    const store = await ctx.rt.mongo()
    for (const table of await tablesOf(ctx, pruneHistoryCommand)) {
      const result = await pruneHistory(store, table, {
        olderThanDays,
        ...(archiveDir !== undefined ? { archiveDir } : {}),
        progress: (p) => console.error(JSON.stringify({ progress: p })),
      })
      console.log(JSON.stringify(result))
    }
    return 0
  },
}
