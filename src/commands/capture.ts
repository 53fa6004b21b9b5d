// migrate, track, untrack and snapshot: set up and manage capture in PostgreSQL.
import { migrate as runMigrations } from '../capture/migrate.ts'
import { track as trackTable, untrack as untrackTable } from '../capture/track.ts'
import { snapshot as snapshotTable } from '../capture/snapshot.ts'
import { UsageError, intFlag, type Command } from './command.ts'

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
  if (positionals.length === 0) throw new UsageError('name at least one table', command)
  return positionals
}

export const track: Command = {
  name: 'track',
  summary: 'install the capture trigger on tables (refuses tables without a primary key)',
  usage: '<table> [<table> …]',
  async run({ rt, positionals }) {
    for (const table of tables(positionals, track)) console.log(JSON.stringify(await trackTable(rt, table)))
    return 0
  },
}

export const untrack: Command = {
  name: 'untrack',
  summary: 'remove the capture trigger from tables (their history stays)',
  usage: '<table> [<table> …]',
  async run({ rt, positionals }) {
    for (const table of tables(positionals, untrack)) console.log(JSON.stringify(await untrackTable(rt, table)))
    return 0
  },
}

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
