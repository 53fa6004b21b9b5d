// replay: rebuild history and read model collections from the event store, swap them in, catch up (src/replay).
import { replayTable } from '../replay/index.ts'
import { canonicalName } from '../tables.ts'
import { consumedTables } from '../topics.ts'
import { UsageError } from '../errors.ts'
import { intFlag, type Command } from './command.ts'

export const replay: Command = {
  name: 'replay',
  summary: 'rebuild the history and read model of tables from the event store, then swap them in (resumable)',
  usage: '[--fresh] [--page-size N] [<table> …]',
  description:
    'Rebuilds <table>_history and <table>_state from cdc.event_store into new collections, indexed as the consumer indexes them, swaps them in (renameCollection), then applies again what was committed meanwhile: safe while the pipeline runs. Tables: the named ones, or every consumed table. Progress on stderr as JSON logs, one JSON result per table on stdout. An interrupted replay resumes from its cursor (cdc_replay) when run again; --fresh starts over. Run one replay of a table at a time.',
  options: {
    fresh: { type: 'boolean', description: 'ignore the cursor of an interrupted replay and start over' },
    'page-size': { type: 'string', placeholder: 'N', description: 'events read per page (default 1000)' },
  },
  async run(ctx) {
    const pageSize = intFlag(ctx, 'page-size', replay)
    if (pageSize !== undefined && pageSize > 100_000) throw new UsageError(`--page-size: at most 100000, got ${pageSize}`, replay.name)
    const tracked = ctx.rt.tracked()
    await tracked.refresh()
    const known = consumedTables(ctx.rt.config, tracked.list())
    const tables = ctx.positionals.map((t) => {
      let name: string
      try {
        name = canonicalName(t)
      } catch (error) {
        throw new UsageError(`${t}: ${(error as Error).message}`, replay.name)
      }
      if (!known.includes(name)) throw new UsageError(`${t}: not a consumed table (known: ${known.join(', ') || 'none'})`, replay.name)
      return name
    })
    let last = 0
    for (const table of tables.length > 0 ? tables : known) {
      const result = await replayTable(ctx.rt, table, {
        fresh: ctx.values.fresh === true,
        ...(pageSize !== undefined ? { pageSize } : {}),
        onPage: (p) => {
          if (Date.now() - last < 1000) return
          last = Date.now()
          ctx.rt.log.info('replay progress', { ...p })
        },
      })
      console.log(JSON.stringify(result))
    }
    return 0
  },
}
