// status: the tracked tables and how far their events got (see src/status.ts).
import { formatStatus, status as readStatus } from '../status.ts'
import type { Command } from './command.ts'

export const status: Command = {
  name: 'status',
  summary: 'tracked tables with capture mode, events captured, last event time, relay backlog and consumer lag',
  options: { json: { type: 'boolean', description: 'print JSON instead of a table' } },
  async run({ rt, values }) {
    const result = await readStatus(rt)
    console.log(values.json === true ? JSON.stringify(result, null, 2) : formatStatus(result))
    return 0
  },
}
