// serve, relay, consume and all: the long-running roles, started in pipeline order and stopped in reverse by cli.ts.
import type { Role, Runtime } from '../runtime.ts'
import { startApi } from '../api/server.ts'
import { startRelay } from '../relay/index.ts'
import { startConsumer } from '../consume/index.ts'
import { startOpsServer } from '../ops/server.ts'
import { UsageError } from '../errors.ts'
import { stringFlag, type Command } from './command.ts'

export const ROLES = ['relay', 'consume', 'serve'] as const
export type RoleName = (typeof ROLES)[number]

export async function startRoles(rt: Runtime, names: readonly RoleName[], relayMode?: 'poll' | 'wal'): Promise<Role[]> {
  const started: Role[] = []
  // Without the API, the process answers probes and scrapes on the ops port, from before its roles start (a consumer
  // waiting for Kafka is alive, not ready).
  const ops = names.includes('serve') ? undefined : startOpsServer(rt, ROLES.filter((r) => names.includes(r)))
  if (ops) started.push(ops)
  try {
    for (const name of ROLES.filter((r) => names.includes(r))) {
      if (name === 'relay') started.push(await startRelay(rt, { mode: relayMode }))
      if (name === 'consume') started.push(await startConsumer(rt))
      if (name === 'serve') started.push(await startApi(rt))
    }
  } catch (error) {
    for (const role of started.reverse()) await role.stop().catch(() => {})
    throw error
  }
  ops?.markStarted()
  return started
}

function relayMode(value: string | undefined, command: Command) {
  if (value === undefined || value === 'poll' || value === 'wal') return value
  throw new UsageError(`--mode: expected poll or wal, got ${JSON.stringify(value)}`, command.name)
}

/** Where the API listens: flags that override http.host and http.port, checked like the keys themselves. */
const listenFlags = {
  host: { type: 'string', placeholder: 'HOST', description: 'override http.host', config: 'http.host' },
  port: { type: 'string', placeholder: 'PORT', description: 'override http.port', config: 'http.port' },
} as const

export const serve: Command = {
  name: 'serve',
  summary: 'HTTP API: history of every tracked table, DLQ admin, health and metrics (and the demo CRUD when on)',
  options: listenFlags,
  run: ({ rt }) => startRoles(rt, ['serve']),
}

export const relay: Command = {
  name: 'relay',
  summary: 'publish captured events from PostgreSQL to Kafka (one leader; poll or wal mode)',
  options: { mode: { type: 'string', placeholder: 'poll|wal', description: 'override relay.mode' } },
  run(ctx) {
    return startRoles(ctx.rt, ['relay'], relayMode(stringFlag(ctx, 'mode'), relay))
  },
}

export const consume: Command = {
  name: 'consume',
  summary: 'write Kafka events into the MongoDB history and read model (DLQ for poison messages)',
  run: ({ rt }) => startRoles(rt, ['consume']),
}

export const all: Command = {
  name: 'all',
  summary: 'run every long-running role (relay, consume, serve) in one process',
  options: {
    roles: { type: 'string', placeholder: 'a,b', description: `roles to run, of ${ROLES.join(', ')} (default: all)` },
    mode: { type: 'string', placeholder: 'poll|wal', description: 'override relay.mode' },
    ...listenFlags,
  },
  run(ctx) {
    const text = stringFlag(ctx, 'roles')
    const names = text === undefined ? [...ROLES] : text.split(',').map((s) => s.trim())
    const unknown = names.filter((n) => !(ROLES as readonly string[]).includes(n))
    if (unknown.length || names.length === 0) {
      throw new UsageError(`--roles: unknown role ${JSON.stringify(unknown[0] ?? '')}; expected some of ${ROLES.join(', ')}`, all.name)
    }
    return startRoles(ctx.rt, names as RoleName[], relayMode(stringFlag(ctx, 'mode'), all))
  },
}
