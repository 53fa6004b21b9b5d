// A dead head that fails on every redrive can be discarded (API and CLI, admin, with a reason): its version is taken
// by an audited `EventDiscarded` history record (or, when it names none, by a marker), its parked followers are
// released in order, and the read model moves on. Redrive publishes each DLQ entry once however many run at the same
// time, and `POST /dlq/redrive` without `dryRun` only previews.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { dlqAdmin } from '../../src/api/server.ts'
import { startConsumer } from '../../src/consume/index.ts'
import { DlqHeaders } from '../../src/events.ts'
import { listDlq, redrive } from '../../src/redrive/index.ts'
import type { Role } from '../../src/runtime.ts'
import { createApiEnv, type ApiEnv } from '../api/support.ts'
import { eventually, ROOT } from '../support/env.ts'
import { stackConfigEnv } from '../support/stack-env.ts'
import { ensureTopics, history, message, publish, readAll, stateOf, storeOf, versions } from './support.ts'

let api: ApiEnv
let consumer: Role | undefined
let topic: string

beforeAll(async () => {
  api = await createApiEnv(() => {}, {
    dlq: { list: (f) => dlqAdmin(api.rt).list(f), redrive: (f) => dlqAdmin(api.rt).redrive(f), discard: (r) => dlqAdmin(api.rt).discard(r) },
  })
  topic = `${api.tag}.customers`
  await ensureTopics(api, [topic])
  consumer = await startConsumer(api.rt)
})

afterAll(async () => {
  await consumer?.stop()
  await api?.cleanup()
})

function cli(args: string[]) {
  const p = Bun.spawnSync(['bun', 'run', `${ROOT}src/cli.ts`, ...args], {
    cwd: ROOT,
    env: {
      ...process.env,
      ...stackConfigEnv(),
      CDC_POSTGRES_URL: api.config.postgres.url,
      CDC_KAFKA_TOPIC_TEMPLATE: api.config.kafka.topicTemplate,
      CDC_KAFKA_CLIENT_ID: api.config.kafka.clientId,
      CDC_MONGO_DATABASE: api.config.mongo.database,
      CDC_CONSUME_GROUP_ID: api.config.consume.groupId,
      CDC_LOG_LEVEL: 'error',
    },
    stdout: 'pipe',
    stderr: 'pipe',
  })
  return { code: p.exitCode, out: p.stdout.toString(), err: p.stderr.toString() }
}

const pending = async (key: string) => (await listDlq(api.rt, { topic, aggregate: key })).items

describe('discarding a dead head', () => {
  test('API: the head becomes an audited EventDiscarded at its version; followers are released in order', async () => {
    const events = versions('customers', 'd1', 1, 4)
    // Rejected by MongoDB for good on every attempt: a dead head.
    events[1] = { ...events[1]!, after: { id: 'd1', 'e.mail': 'x' } }
    // Followers published once the head failed, so they are parked (not in the head's own batch).
    await publish(api, events.slice(0, 2).map((e) => message(api, e)))
    await eventually(async () => (await pending('d1')).length === 1, 30_000)
    await publish(api, events.slice(2).map((e) => message(api, e)))
    const entries = await eventually(async () => {
      const items = await pending('d1')
      return items.length === 3 && items
    }, 30_000)
    expect(entries.map((e) => e.parked)).toEqual([false, true, true])
    const [head, follower] = entries as [(typeof entries)[0], (typeof entries)[0]]

    const at = (e: typeof head) => ({ topic: e.topic, partition: e.partition, offset: e.offset })
    expect((await api.call('POST', '/dlq/discard', { body: { ...at(follower), reason: 'skip' } })).status).toBe(409)
    expect((await api.call('POST', '/dlq/discard', { body: { ...at(head), offset: '999999', reason: 'skip' } })).status).toBe(404)
    const blank = await api.call('POST', '/dlq/discard', { body: { ...at(head), reason: '  ' } })
    expect(blank.status).toBe(400)
    expect(blank.body.errors[0].path).toBe('reason')
    expect((await api.call('POST', '/dlq/discard', { body: { ...at(head), topic: 'nope.dlq', reason: 'x' } })).status).toBe(400)

    const res = await api.call('POST', '/dlq/discard', { body: { ...at(head), reason: 'ticket 42: bad address' }, headers: { 'x-actor': 'alice' } })
    expect(res.status).toBe(200)
    expect(res.body).toMatchObject({ record: { table: 'customers', version: 2, eventId: events[1]!.id }, released: 2 })

    const docs = await eventually(async () => {
      const d = await history(api, 'customers', { 'aggregate.id': 'd1' })
      return d.length === 4 && d
    }, 30_000)
    expect(docs.map((d) => [d.version, d.type])).toEqual([
      [1, 'CustomersCreated'],
      [2, 'EventDiscarded'],
      [3, 'CustomersUpdated'],
      [4, 'CustomersUpdated'],
    ])
    expect(docs[1]).toMatchObject({ _id: events[1]!.id, actor: { id: 'alice' }, reason: 'ticket 42: bad address', after: null })
    expect((docs[1]!.data as { discarded: { error: string } }).discarded.error).toContain('history write rejected')
    const state = await eventually(async () => {
      const s = await stateOf(api, 'customers', 'd1')
      return s?.version === 4 && s
    }, 30_000)
    expect(state.row).toEqual({ id: 'd1', name: 'v4' })
    const store = storeOf(api)
    await eventually(async () => (await store.collection('cdc_parked').findOne({ _id: `${topic}/d1` })) === null, 30_000)
    const outcome = await store.collection('cdc_outcomes').findOne({ eventId: events[1]!.id, outcome: 'discarded' })
    expect(outcome).toMatchObject({ actor: 'alice', reason: 'ticket 42: bad address' })
    expect(await pending('d1')).toEqual([])
    expect((await api.call('POST', '/dlq/discard', { body: { ...at(head), reason: 'again' } })).status).toBe(409)
  }, 90_000)

  test('CLI: a head with no version to occupy lets its followers pass; the outcome log says who and why', async () => {
    await publish(api, [{ topic, key: 'g1', value: '{garbage' }])
    await eventually(async () => (await pending('g1')).length === 1, 30_000)
    await publish(api, versions('customers', 'g1', 1, 2).map((e) => message(api, e)))
    const entries = await eventually(async () => {
      const items = await pending('g1')
      return items.length === 3 && items
    }, 30_000)
    const head = entries[0]!
    const r = cli(['discard', '--topic', head.topic, '--partition', String(head.partition), '--offset', head.offset, '--reason', 'junk from a test', '--actor', 'bob'])
    expect(r.code).toBe(0)
    expect(JSON.parse(r.out)).toMatchObject({ record: null, released: 2 })
    await eventually(async () => (await stateOf(api, 'customers', 'g1'))?.version === 2, 30_000)
    expect((await history(api, 'customers', { 'aggregate.id': 'g1' })).map((d) => d.version)).toEqual([1, 2])
    const outcomes = await storeOf(api).collection('cdc_outcomes').find({ outcome: 'discarded', actor: 'bob' })
    expect(outcomes).toHaveLength(1)
    expect(outcomes[0]).toMatchObject({ reason: 'junk from a test', offset: head.offset })
    expect(cli(['discard', '--topic', head.topic, '--partition', String(head.partition), '--offset', head.offset, '--reason', 'x']).code).toBe(1)
  }, 90_000)
})

describe('redrive', () => {
  test('concurrent redrives publish each DLQ entry once', async () => {
    const keys = Array.from({ length: 6 }, (_, i) => `c${i}`)
    await publish(api, keys.map((key) => ({ topic, key, value: `{poison ${key}` })))
    await eventually(async () => (await listDlq(api.rt, { topic, error: 'undecodable' })).items.length === 6, 30_000)
    const reports = await Promise.all(Array.from({ length: 4 }, () => redrive(api.rt, { topic, error: 'undecodable' })))
    expect(reports.reduce((n, r) => n + r.redriven, 0)).toBe(6)
    for (const r of reports) for (const i of r.items) expect(['redriven', 'claimed-elsewhere']).toContain(i.action)
    const republished = (await readAll(api, topic)).map((m) => m.headers[DlqHeaders.redriveId]).filter((id) => id !== undefined)
    const ofThese = republished.filter((id) => reports.some((r) => r.items.some((i) => i.action === 'redriven' && id === `${i.topic}:${i.partition}:${i.offset}`)))
    expect(ofThese).toHaveLength(6)
    expect(new Set(ofThese).size).toBe(6)
  }, 90_000)

  test('POST /dlq/redrive without dryRun is a dry run', async () => {
    // The six poison messages failed again and are pending once more.
    await eventually(async () => (await listDlq(api.rt, { topic, error: 'undecodable' })).items.length === 6, 30_000)
    const before = await storeOf(api).collection('cdc_dlq_redriven').count()
    const res = await api.call('POST', '/dlq/redrive', { body: {} })
    expect(res.status).toBe(200)
    expect(res.body).toMatchObject({ dryRun: true, redriven: 0 })
    expect(res.body.items.length).toBeGreaterThanOrEqual(6)
    expect(res.body.items.every((i: { action: string }) => i.action === 'would-redrive')).toBe(true)
    expect(await storeOf(api).collection('cdc_dlq_redriven').count()).toBe(before)
  }, 60_000)

  test('the CLI rejects a --topic that is not consumed with exit code 2', () => {
    const r = cli(['redrive', '--topic', 'no.such.topic', '--dry-run'])
    expect(r.code).toBe(2)
    expect(r.err).toContain('--topic: "no.such.topic" is not a consumed topic')
    const d = cli(['discard', '--topic', 'no.such.topic.dlq', '--partition', '0', '--offset', '0', '--reason', 'x'])
    expect(d.code).toBe(2)
    expect(d.err).toContain('--topic')
  })
})
