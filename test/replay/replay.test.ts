// `cdc replay` against the real stack with the pipeline running: a read model deleted by hand comes back document for
// document; writes during a replay all end up in the swapped-in collections; an interrupted replay resumes from its
// cursor; bad arguments exit 2.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import type { Doc } from '../../src/clients/mongo.ts'
import { startConsumer } from '../../src/consume/index.ts'
import { startRelay } from '../../src/relay/index.ts'
import { REPLAY_COLLECTION, replayTable, type ReplayDoc } from '../../src/replay/index.ts'
import type { Role } from '../../src/runtime.ts'
import { createApiEnv, type ApiEnv } from '../api/support.ts'
import { ROOT, eventually } from '../support/env.ts'
import { stackConfigEnv } from '../support/stack-env.ts'
import { storeOf } from '../consume/support.ts'

let api: ApiEnv
const roles: Role[] = []

beforeAll(async () => {
  api = await createApiEnv()
  roles.push(await startRelay(api.rt))
  roles.push(await startConsumer(api.rt))
})

afterAll(async () => {
  for (const role of roles.reverse()) await role.stop().catch(() => {})
  await api?.cleanup()
})

const all = (collection: string) => storeOf(api).collection(collection).find({}, { sort: { _id: 1 } })

/** Every (aggregate, version) of a table in the event store. */
async function storeVersions(table: string): Promise<Map<string, number[]>> {
  const rows = await api.rt.db().query<{ aggregate_id: string; version: string }>(
    'select aggregate_id, version from cdc.event_store where aggregate_type = $1 order by aggregate_id, version',
    [table],
  )
  const out = new Map<string, number[]>()
  for (const r of rows) out.set(r.aggregate_id, [...(out.get(r.aggregate_id) ?? []), Number(r.version)])
  return out
}

/**
 * True once the history and read model hold exactly the event store's events (each version once, state at the last);
 * otherwise throws what differs, so a timeout says why.
 */
async function complete(table: string): Promise<boolean> {
  const expected = await storeVersions(table)
  const history = await all(`${table}_history`)
  const seen = new Map<string, number[]>()
  for (const d of history) {
    const id = (d.aggregate as { id: string }).id
    seen.set(id, [...(seen.get(id) ?? []), d.version as number])
  }
  const differ: string[] = []
  for (const [id, versions] of expected) {
    const got = (seen.get(id) ?? []).sort((a, b) => a - b)
    if (got.join() !== versions.join()) differ.push(`history ${id}: [${got}] not [${versions}]`)
  }
  for (const id of seen.keys()) if (!expected.has(id)) differ.push(`history ${id}: not in the event store`)
  const states = new Map((await all(`${table}_state`)).map((s) => [String(s._id), s.version as number]))
  for (const [id, versions] of expected) if (states.get(id) !== versions.at(-1)) differ.push(`state ${id}: ${states.get(id)} not ${versions.at(-1)}`)
  for (const id of states.keys()) if (!expected.has(id)) differ.push(`state ${id}: not in the event store`)
  if (differ.length > 0) throw new Error(differ.slice(0, 5).join('; ') + (differ.length > 5 ? ` (+${differ.length - 5})` : ''))
  return true
}

async function writeSome(n: number, tag: string) {
  const ids: string[] = []
  for (let i = 0; i < n; i++) {
    const res = await api.call('POST', '/customers', { body: { name: `${tag} ${i}`, email: `${tag}${i}@example.com` }, headers: { 'x-actor': 'alice' } })
    expect(res.status).toBe(201)
    ids.push(String(res.body.id))
    if (i % 2 === 0) expect((await api.call('PATCH', `/customers/${res.body.id}`, { body: { address: `Street ${i}` } })).status).toBe(200)
  }
  return ids
}

/** Updates of the aggregates the replay reads first (and so passes early), and new ones, while it runs: all must survive. */
async function writesContinue() {
  await writeSome(6, 'base')
  await eventually(() => complete('customers'), 40_000)
  // Updates of the aggregates the replay reads first (and so passes early), and new ones: both kinds must survive.
  const ids = (await all('customers_state')).map((d) => String(d._id)).sort()
  let writing = true
  const writer = (async () => {
    let n = 0
    while (writing) {
      const res = await api.call('PATCH', `/customers/${ids[n % 4]}`, { body: { address: `Moved ${n}` } })
      expect(res.status).toBe(200)
      if (n % 5 === 0) await writeSome(1, `w${n}`)
      n++
      await Bun.sleep(20)
    }
    return n
  })()
  await Bun.sleep(500)
  // Small pages: the replay runs long enough for the consumer to write many events into the old collections.
  const result = await replayTable(api.rt, 'customers', { pageSize: 3, onPage: () => Bun.sleep(30) })
  await Bun.sleep(500)
  writing = false
  const written = await writer
  expect(written).toBeGreaterThan(3)
  expect(result.caughtUp).toBeGreaterThan(0)
  await eventually(() => complete('customers'), 60_000)
  // An update the consumer wrote to the old read model just before the swap is missing from the new one until the
  // catch-up applies it: the consumer may hold the next version as a gap meanwhile; its re-check closes it.
  await eventually(async () => (await storeOf(api).collection('cdc_gaps').count({ table: 'customers' })) === 0, 30_000)
}

/** A history document without what only says when and from where it was stored. */
const envelope = ({ storedAt, kafka, ...rest }: Doc) => rest

describe('cdc replay', () => {
  test('rebuilds a read model deleted by hand to the same documents, and the history with the same envelopes', async () => {
    await writeSome(12, 'ada')
    const product = await api.call('POST', '/products', { body: { category: 'k', name: 'P', price: 2.5 } })
    const customer = await api.call('POST', '/customers', { body: { name: 'Orderer', email: 'o@example.com' } })
    const order = await api.call('POST', '/orders', { body: { customerId: customer.body.id, shippingAddress: 'A', lines: [{ productId: product.body.id, quantity: 2 }] } })
    expect(order.status).toBe(201)
    await eventually(() => complete('customers'), 40_000)
    await eventually(() => complete('orders'), 40_000)
    const before = { state: await all('customers_state'), history: await all('customers_history'), orders: await all('orders_state') }
    const indexesOf = async () => ({
      history: await storeOf(api).collection('customers_history').indexNames(),
      state: await storeOf(api).collection('customers_state').indexNames(),
    })
    const indexes = await indexesOf()
    expect(indexes.state).toContain('find')
    expect(before.state.length).toBeGreaterThan(10)

    await storeOf(api).collection('customers_state').drop()
    expect(await all('customers_state')).toEqual([])
    const result = await replayTable(api.rt, 'customers', { pageSize: 7 })
    expect(result).toMatchObject({ table: 'customers', resumed: false, skipped: 0, caughtUp: 0 })
    expect(result.events).toBe(before.history.length)

    // Field by field: the same read model documents.
    expect(await all('customers_state')).toEqual(before.state)
    const history = await all('customers_history')
    expect(history.map(envelope)).toEqual(before.history.map(envelope))
    expect(history.every((d) => (d.kafka as { partition: number }).partition === -1)).toBe(true)
    // Indexed as the consumer indexes them: the console's find by value is served again, (aggregate, version) unique.
    expect(await indexesOf()).toEqual(indexes)
    const copy = { ...history[0]!, _id: Bun.randomUUIDv7() }
    expect((await storeOf(api).collection('customers_history').insertMany([copy])).duplicates).toEqual([0])
    // Another table untouched; no cursor left behind.
    expect(await all('orders_state')).toEqual(before.orders)
    expect(await storeOf(api).collection(REPLAY_COLLECTION).findOne({ _id: 'customers' })).toBeNull()

    // The API reads the swapped-in collections.
    const id = String(before.state[0]!._id)
    const res = await api.call('GET', `/customers/${id}/history`)
    expect(res.status).toBe(200)
    expect(res.body.items.length).toBe(before.history.filter((d) => (d.aggregate as { id: string }).id === id).length)
  }, 120_000)

  test('a replay while writes continue loses nothing: every event ends in the swapped-in collections', () => writesContinue(), 180_000)

  test('an interrupted replay resumes from its cursor and ends with the same documents', async () => {
    await eventually(() => complete('customers'), 40_000)
    const before = await all('customers_state')
    let pages = 0
    const interrupted = replayTable(api.rt, 'customers', {
      pageSize: 4,
      onPage: () => {
        if (++pages === 3) throw new Error('interrupted')
      },
    })
    await expect(interrupted).rejects.toThrow('interrupted')
    const cursor = await storeOf(api).collection<ReplayDoc>(REPLAY_COLLECTION).findOne({ _id: 'customers' })
    expect(cursor).toMatchObject({ phase: 'build', events: 12 })
    // The live collections are untouched meanwhile.
    expect(await all('customers_state')).toEqual(before)

    const resumed = await replayTable(api.rt, 'customers', { pageSize: 4 })
    expect(resumed.resumed).toBe(true)
    expect(resumed.resumedFrom).toEqual(cursor!.after)
    expect(resumed.events).toBe(before.reduce((n, s) => n + (s.version as number), 0) - 12)
    expect(await all('customers_state')).toEqual(before)
    await eventually(() => complete('customers'), 40_000)
  }, 120_000)

  test('interrupted after the swap: a resumed replay renames nothing twice, catches up and finishes', async () => {
    await eventually(() => complete('customers'), 40_000)
    const before = await all('customers_state')
    const cursors = storeOf(api).collection<ReplayDoc>(REPLAY_COLLECTION)
    await expect(
      replayTable(api.rt, 'customers', {
        onPhase: (phase) => {
          if (phase === 'catch-up') throw new Error('interrupted')
        },
      }),
    ).rejects.toThrow('interrupted')
    // As if the run had died right after its renames, before it could note them.
    await cursors.bulkWrite([{ updateOne: { filter: { _id: 'customers' }, update: { $set: { phase: 'swap', swapped: [] } } } }])
    const resumed = await replayTable(api.rt, 'customers')
    expect(resumed).toMatchObject({ resumed: true, events: 0 })
    expect(await all('customers_state')).toEqual(before)
    expect(await cursors.findOne({ _id: 'customers' })).toBeNull()
    await eventually(() => complete('customers'), 40_000)
  }, 120_000)

  test('bad arguments exit 2 naming the problem; a good run prints its result', async () => {
    const env = { ...process.env, ...stackConfigEnv(), CDC_CONFIG: '', CDC_POSTGRES_URL: api.config.postgres.url, CDC_MONGO_URL: api.config.mongo.url }
    const run = (...args: string[]) => {
      const p = Bun.spawnSync(['bun', 'run', `${ROOT}src/cli.ts`, 'replay', ...args], { cwd: '/tmp', env, stdout: 'pipe', stderr: 'pipe' })
      return { code: p.exitCode, err: p.stderr.toString() }
    }
    expect(run('--page-size', '0')).toMatchObject({ code: 2, err: expect.stringContaining('--page-size') })
    expect(run('--frobnicate')).toMatchObject({ code: 2 })
    expect(run('no_such_table')).toMatchObject({ code: 2, err: expect.stringContaining('no_such_table: not a consumed table') })

    // A good run: one JSON result per table on stdout, JSON logs on stderr.
    const p = Bun.spawnSync(['bun', 'run', `${ROOT}src/cli.ts`, 'replay', 'orders'], {
      cwd: '/tmp',
      env: { ...env, CDC_MONGO_DATABASE: api.config.mongo.database, CDC_DEMO_ENABLED: 'true' },
      stdout: 'pipe',
      stderr: 'pipe',
    })
    expect(p.exitCode).toBe(0)
    expect(JSON.parse(p.stdout.toString().trim())).toMatchObject({ table: 'orders', resumed: false, skipped: 0 })
    const logs = p.stderr.toString().trim().split('\n').map((l) => JSON.parse(l) as { msg?: string; message?: string })
    expect(logs.some((l) => JSON.stringify(l).includes('replay done'))).toBe(true)
  }, 60_000)
})

describe('cdc replay, capture.mode = "logical" (the relay writes the event store after the source commit)', () => {
  let outer: ApiEnv
  const logicalRoles: Role[] = []
  beforeAll(async () => {
    outer = api
    api = await createApiEnv((c) => {
      c.capture.mode = 'logical'
    })
    logicalRoles.push(await startRelay(api.rt))
    logicalRoles.push(await startConsumer(api.rt))
  })
  afterAll(async () => {
    for (const role of logicalRoles.reverse()) await role.stop().catch(() => {})
    await api?.cleanup()
    api = outer
  })

  test('a replay while writes continue loses nothing', () => writesContinue(), 180_000)
})
