// migrate, track, untrack and snapshot: set up and manage capture in PostgreSQL.
import { migrate as runMigrations } from '../capture/migrate.ts'
import { track as trackTable, untrack as untrackTable } from '../capture/track.ts'
import { snapshot as snapshotTable } from '../capture/snapshot.ts'
import { UsageError } from '../errors.ts'
import type { Runtime } from '../runtime.ts'
import { intFlag, type Command } from './command.ts'

export const migrate: Command = {
  name: 'migrate',
  summary: 'apply the numbered migrations and changed definitions in sql/, (re)install capture on the tracked tables',
  async run({ rt }) {
    const result = await runMigrations(rt)
    console.log(JSON.stringify(result))
    return 0
  },
}

function tables(positionals: string[], command: Command) {
  if (positionals.length === 0) throw new UsageError('name at least one table', command.name)
  return positionals
}

/** A command that runs `fn` on each named table and prints one JSON line per table. */
function perTable(name: string, summary: string, fn: (rt: Runtime, table: string) => Promise<unknown>, description?: string): Command {
  const command: Command = {
    name,
    summary,
    description,
    usage: '<table> [<table> …]',
    async run({ rt, positionals }) {
      for (const table of tables(positionals, command)) console.log(JSON.stringify(await fn(rt, table)))
      return 0
    },
  }
  return command
}

export const track = perTable(
  'track',
  'start capturing tables: [schema.]table, "Quoted" for mixed case (refuses what cannot be captured, and says why)',
  trackTable,
  'Installs the capture trigger on each table and adds it to the tracked set in schema cdc; running roles pick it up within seconds.\n' +
    'Names follow SQL: app.orders, \'app."LineItems"\' (quote mixed-case names, and quote them again for the shell).\n' +
    'A table needs a primary key or a replica identity index; a partitioned table is tracked by its parent.',
)
export const untrack = perTable('untrack', 'stop capturing tables (their history stays readable)', untrackTable)

export const snapshot: Command = {
  name: 'snapshot',
  summary: 'emit op "r" baseline events for the existing rows of tracked tables (resumable)',
  usage: '<table> [<table> …]',
  options: {
    'batch-size': { type: 'string', placeholder: 'N', description: 'rows per batch (default capture.snapshotBatchSize)' },
    restart: { type: 'boolean', description: 'ignore a saved cursor and start from the first row' },
  },
  async run(ctx) {
    const batchSize = intFlag(ctx, 'batch-size', snapshot)
    for (const table of tables(ctx.positionals, snapshot)) {
      const result = await snapshotTable(ctx.rt, table, { batchSize, restart: ctx.values.restart === true, progress: process.stderr.isTTY })
      console.log(JSON.stringify(result))
    }
    return 0
  },
}
