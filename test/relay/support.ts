// Helpers shared by the relay tests: a database with the capture schema, writers of outbox rows / emitted messages
// with known per-aggregate versions, a spawned `cdc relay` process, and a Kafka reader that checks delivery.
import { appendFileSync } from 'node:fs'
import { connect, type Db } from '../../src/clients/postgres.ts'
import type { InMessage } from '../../src/clients/kafka.ts'
import { migrate } from '../../src/capture/migrate.ts'
import { EventHeaders } from '../../src/events.ts'
import type { Config } from '../../src/config.ts'
import { ROOT, createTestEnv, eventually, type TestEnv } from '../support/env.ts'

/** The real migrations (cdc.outbox, cdc.event_store, demo schema). */
export async function prepareDb(env: TestEnv) {
  await migrate(env.rt)
}

/**
 * The envs a test file creates (each migrated) and the relay processes it spawns; `cleanup` stops the processes, then
 * drops the envs (their replication slots first).
 */
export function relayEnvs() {
  const envs: TestEnv[] = []
  const procs: RelayProcess[] = []
  return {
    procs,
    async create(overrides?: (c: Config) => void): Promise<TestEnv> {
      const env = await createTestEnv(overrides)
      envs.push(env)
      await prepareDb(env)
      return env
    },
    spawn(...args: Parameters<typeof spawnRelay>): RelayProcess {
      const proc = spawnRelay(...args)
      procs.push(proc)
      return proc
    },
    async cleanup() {
      for (const proc of procs) await proc.stop()
      for (const env of envs) await cleanupEnv(env)
    },
  }
}

export interface Written {
  /** aggregate id → event ids by version (index 0 = version 1). */
  byAggregate: Map<string, string[]>
  total: number
}

export function newWritten(): Written {
  return { byAggregate: new Map(), total: 0 }
}

/** Envelopes for one transaction: the next version of each given aggregate (of type customers). */
function envelopes(written: Written, ids: string[]) {
  return ids.map((id, index) => {
    const versions = written.byAggregate.get(id) ?? []
    written.byAggregate.set(id, versions)
    const eventId = crypto.randomUUID()
    versions.push(eventId)
    written.total++
    return {
      id: eventId,
      type: 'CustomerUpdated',
      op: 'u',
      aggregate: { type: 'customers', id },
      version: versions.length,
      tx: { id: '1', index, size: ids.length },
      occurredAt: new Date().toISOString().replace('Z', '000Z'),
      actor: { id: 'test', source: 'sql' },
      reason: null,
      correlationId: null,
      causationId: null,
      changes: [{ path: 'name', before: 'a', after: 'b' }],
      before: { id, name: 'a' },
      after: { id, name: 'b' },
      schema: 1,
    }
  })
}

// As the capture trigger writes them: the envelope into the event store, the event id into the outbox (in order).
const INSERT_EVENTS = `insert into cdc.event_store (id, aggregate_type, aggregate_id, version, type, tx_id, occurred_at, payload)
select (e->>'id')::uuid, e->'aggregate'->>'type', e->'aggregate'->>'id', (e->>'version')::bigint, e->>'type',
       pg_current_xact_id(), (e->>'occurredAt')::timestamptz, e
  from jsonb_array_elements($1::text::jsonb) e`
const INSERT_OUTBOX = `insert into cdc.outbox (event_id, tx_id)
select (e->>'id')::uuid, pg_current_xact_id() from jsonb_array_elements($1::text::jsonb) with ordinality x(e, n) order by n`
const EMIT = `select pg_logical_emit_message(true, 'cdc', e::text) from jsonb_array_elements($1::text::jsonb) e`

/**
 * One transaction with the next event of each aggregate in `ids`. The versions are only counted once the commit
 * succeeded, so a failed write leaves no expectation behind.
 */
export async function writeTx(db: Db, written: Written, ids: string[], how: 'outbox' | 'emit' = 'outbox') {
  const draft: Written = { byAggregate: new Map(ids.map((id) => [id, [...(written.byAggregate.get(id) ?? [])]])), total: 0 }
  const events = envelopes(draft, ids)
  await db.begin(async (tx) => {
    if (how === 'outbox') {
      await tx.query(INSERT_EVENTS, [JSON.stringify(events)])
      await tx.query(INSERT_OUTBOX, [JSON.stringify(events)])
      await tx.query(`select pg_notify('cdc_outbox', '')`)
    } else {
      await tx.query(EMIT, [JSON.stringify(events)])
    }
  })
  for (const [id, versions] of draft.byAggregate) written.byAggregate.set(id, versions)
  written.total += events.length
}

export function parseLsn(text: string): bigint {
  const [hi, lo] = text.split('/')
  return (BigInt(`0x${hi}`) << 32n) | BigInt(`0x${lo}`)
}

/** The env's slot's confirmed position (0 without a slot). */
export async function slotLsn(env: TestEnv): Promise<bigint> {
  const [row] = await env.rt.db().query<{ lsn: string }>('select confirmed_flush_lsn::text as lsn from pg_replication_slots where slot_name = $1', [
    env.config.relay.slot,
  ])
  return row ? parseLsn(row.lsn) : 0n
}

/** WAL written elsewhere in the cluster (another database, nothing for the env's relay): its end position. */
export async function walElsewhere(env: TestEnv): Promise<bigint> {
  const other = connect({ url: env.config.postgres.url.replace(`/${env.tag}`, '/cdc'), max: 1 })
  try {
    const [row] = await other.query<{ lsn: string }>(`select pg_logical_emit_message(false, 'other', repeat('x', 10000))::text as lsn`)
    return parseLsn(row!.lsn)
  } finally {
    await other.end()
  }
}

/** Reads `topics` from the beginning (read_committed) until `done(messages)` holds. */
export async function readUntil(env: TestEnv, topics: string[], done: (messages: InMessage[]) => boolean, timeoutMs = 60_000) {
  const messages: InMessage[] = []
  // The relay may not have created them yet, and kafkajs cannot subscribe to a missing topic.
  await env.rt.kafka().ensureTopics(topics.map((topic) => ({ topic, partitions: env.config.kafka.partitions, replicationFactor: 1 })))
  const consumer = await env.rt.kafka().consumer({
    groupId: `reader-${env.tag}-${Math.random().toString(36).slice(2, 8)}`,
    topics,
    fromBeginning: true,
  })
  void consumer.run(async (batch) => {
    messages.push(...batch.messages)
  })
  try {
    await eventually(async () => done(messages), timeoutMs, 200)
  } finally {
    await consumer.stop().catch(() => {})
  }
  return messages
}

/** Per aggregate, in partition order: versions arrive 1, 2, 3 …; anything repeated is the identical event id. */
export function checkDelivery(all: InMessage[], written: Written) {
  const messages = all.filter((m) => written.byAggregate.has(m.key!))
  const seen = new Map<string, string[]>()
  const problems: string[] = []
  let duplicates = 0
  for (const m of messages) {
    const id = m.key!
    const version = Number(m.headers[EventHeaders.version])
    const eventId = m.headers[EventHeaders.id]!
    const got = seen.get(id) ?? []
    seen.set(id, got)
    if (version === got.length + 1) got.push(eventId)
    else if (version <= got.length) {
      duplicates++
      if (got[version - 1] !== eventId) problems.push(`${id} v${version}: a different event id on redelivery`)
    } else problems.push(`${id}: v${version} after v${got.length}`)
  }
  for (const [id, expected] of written.byAggregate) {
    const got = seen.get(id) ?? []
    if (got.length !== expected.length) problems.push(`${id}: ${got.length} of ${expected.length} events`)
    else if (got.some((e, i) => e !== expected[i])) problems.push(`${id}: event ids differ from the written ones`)
  }
  return { problems, duplicates, distinct: [...seen.values()].reduce((n, v) => n + v.length, 0) }
}

/** Every written event id has arrived (the topic may hold other tests' events too). */
export function allDelivered(written: Written) {
  return (messages: InMessage[]) => {
    const got = new Set(messages.map((m) => m.headers[EventHeaders.id]))
    return [...written.byAggregate.values()].every((ids) => ids.every((id) => got.has(id)))
  }
}

export interface RelayProcess {
  proc: ReturnType<typeof Bun.spawn>
  logPath: string
  log(): Promise<string>
  kill9(): Promise<void>
  stop(): Promise<void>
}

/** `bun run src/cli.ts relay` against the test env (its database, topics, transactional id, slot). */
export function spawnRelay(env: TestEnv, mode: 'poll' | 'wal', name: string, extra: Record<string, string> = {}): RelayProcess {
  const logPath = `/tmp/cdc-relay-${env.tag}-${name}.log`
  appendFileSync(logPath, '')
  const c = env.config
  const proc = Bun.spawn([process.execPath, 'run', 'src/cli.ts', 'relay', '--mode', mode], {
    cwd: ROOT,
    env: {
      ...process.env,
      CDC_POSTGRES_URL: c.postgres.url,
      CDC_KAFKA_BROKERS: c.kafka.brokers.join(','),
      CDC_KAFKA_TOPIC_TEMPLATE: c.kafka.topicTemplate,
      CDC_KAFKA_CLIENT_ID: c.kafka.clientId,
      CDC_RELAY_TRANSACTIONAL_ID: c.relay.transactionalId,
      CDC_RELAY_SLOT: c.relay.slot,
      CDC_RELAY_PUBLICATION: c.relay.publication,
      CDC_RELAY_LINGER_MS: String(c.relay.lingerMs),
      CDC_RELAY_POLL_INTERVAL_MS: String(c.relay.pollIntervalMs),
      CDC_RELAY_BATCH_SIZE: String(c.relay.batchSize),
      CDC_RELAY_HEARTBEAT_MS: String(c.relay.heartbeatMs),
      CDC_LOG_LEVEL: 'info',
      ...extra,
    },
    stdout: 'ignore',
    stderr: Bun.file(logPath),
  })
  return {
    proc,
    logPath,
    log: () => Bun.file(logPath).text(),
    async kill9() {
      proc.kill(9)
      await proc.exited
    },
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return
      proc.kill('SIGTERM')
      const timer = setTimeout(() => proc.kill(9), 10_000)
      await proc.exited
      clearTimeout(timer)
    },
  }
}

export async function isLeader(p: RelayProcess) {
  const text = await p.log()
  const became = text.lastIndexOf('"relay is the leader"')
  return became >= 0 && text.lastIndexOf('"relay stepped down') < became
}

/**
 * env.cleanup(), after dropping this env's replication slot: a walsender may outlive its killed relay for a moment,
 * and a slot left behind would hold back WAL of the whole shared server (and keep its database from being dropped).
 */
export async function cleanupEnv(env: TestEnv) {
  const db = connect({ url: env.config.postgres.url, max: 1, name: 'cdc-test-cleanup' })
  try {
    await eventually(async () => {
      const rows = await db.query<{ active: boolean }>('select active from pg_replication_slots where slot_name = $1', [env.config.relay.slot])
      if (rows[0]?.active) return false
      if (rows[0]) await db.query('select pg_drop_replication_slot($1)', [env.config.relay.slot])
      return true
    }, 15_000, 200).catch(() => {})
  } finally {
    await db.end()
  }
  await env.cleanup()
}
