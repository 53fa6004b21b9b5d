// Poll mode in-process: routing (topic, key, headers), whole transactions per batch, rows deleted after the ack,
// topics created up front, metrics.
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { ROOT, createTestEnv, eventually, type TestEnv } from '../support/env.ts'
import { startRelay } from '../../src/relay/index.ts'
import { fetchBatch } from '../../src/relay/poll.ts'
import { relayMetrics } from '../../src/relay/metrics.ts'
import { EventHeaders } from '../../src/events.ts'
import type { Role } from '../../src/runtime.ts'
import { allDelivered, checkDelivery, newWritten, prepareDb, readUntil, writeTx, cleanupEnv } from './support.ts'

let env: TestEnv
let relay: Role | undefined

beforeAll(async () => {
  env = await createTestEnv((c) => {
    c.relay.batchSize = 3
    c.kafka.topics = { CustomerVipGranted: `${c.kafka.clientId}.vip` }
  })
  await prepareDb(env)
}, 60_000)

afterAll(async () => {
  await relay?.stop()
  await cleanupEnv(env)
}, 60_000)

test('a batch never splits a transaction', async () => {
  const written = newWritten()
  const db = env.rt.db()
  await writeTx(db, written, ['a1'])
  await writeTx(db, written, ['b1', 'b2', 'b3', 'b4', 'b5'])
  await writeTx(db, written, ['c1'])
  const first = await fetchBatch(db, 3)
  // The head's first 3 rows end inside the 5-row transaction: all of it comes along, nothing of the next one.
  expect(first.events.map((e) => e.aggregateId)).toEqual(['a1', 'b1', 'b2', 'b3', 'b4', 'b5'])
  await db.query('delete from cdc.outbox')
}, 60_000)

test('publishes outbox rows with key, headers and topic, then deletes them', async () => {
  const before = relayMetrics.published.get({ mode: 'poll' })
  relay = await startRelay(env.rt, { mode: 'poll' })
  const written = newWritten()
  const db = env.rt.db()
  for (let i = 0; i < 5; i++) await writeTx(db, written, ['p1', 'p2', `x${i}`])
  const topic = `${env.tag}.customers`
  const messages = await readUntil(env, [topic], allDelivered(written))
  const { problems, duplicates } = checkDelivery(messages, written)
  expect(problems).toEqual([])
  expect(duplicates).toBe(0)
  const m = messages.find((x) => x.key === 'p2' && x.headers[EventHeaders.version] === '3')!
  expect(m.headers[EventHeaders.id]).toBe(written.byAggregate.get('p2')![2]!)
  expect(m.headers[EventHeaders.type]).toBe('CustomerUpdated')
  const envelope = JSON.parse(m.value!.toString())
  expect(envelope.id).toBe(m.headers[EventHeaders.id]!)
  expect(envelope.aggregate).toEqual({ type: 'customers', id: 'p2' })
  await eventually(async () => (await db.query('select 1 from cdc.outbox')).length === 0)
  expect(relayMetrics.published.get({ mode: 'poll' }) - before).toBe(written.total)
  expect(relayMetrics.leader.get()).toBe(1)
  const topics = await env.rt.kafka().listTopics()
  for (const t of ['customers', 'products', 'orders']) {
    expect(topics).toContain(`${env.tag}.${t}`)
    expect(topics).toContain(`${env.tag}.${t}.dlq`)
  }
}, 60_000)

test('a transaction larger than relay.batchSize goes out whole, in one Kafka transaction', async () => {
  const before = relayMetrics.batches.get({ mode: 'poll' })
  const written = newWritten()
  await writeTx(env.rt.db(), written, ['t1', 't2', 't3', 't4', 't5', 't6', 't7']) // batchSize is 3
  const messages = await readUntil(env, [`${env.tag}.customers`], allDelivered(written))
  expect(checkDelivery(messages, written).problems).toEqual([])
  expect(relayMetrics.batches.get({ mode: 'poll' }) - before).toBe(1)
}, 60_000)

test('a transaction whose events exceed the broker\'s request limit still goes out whole, in one Kafka transaction', async () => {
  const db = env.rt.db()
  const before = relayMetrics.batches.get({ mode: 'poll' })
  // ~2,000 events of ~2.8 KB: several MB, where the broker refuses a record batch over 1 MB
  const rows = await db.query<{ id: number }>(
    `insert into customers (name, email, address) select 'bulk ' || g, 'bulk' || g || '@x', repeat('Long Street ', 200) || g
       from generate_series(1, 2000) g returning id`,
  )
  const ids = new Set(rows.map((r) => String(r.id)))
  const messages = await readUntil(env, [`${env.tag}.customers`], (m) => m.filter((x) => ids.has(x.key!)).length >= ids.size, 90_000)
  expect(messages.filter((x) => ids.has(x.key!)).length).toBe(ids.size)
  expect(relayMetrics.batches.get({ mode: 'poll' }) - before).toBe(1)
}, 120_000)

test('per-type topic override from kafka.topics', async () => {
  const db = env.rt.db()
  const id = crypto.randomUUID()
  await db.query(
    `with e as (
       insert into cdc.event_store (id, aggregate_type, aggregate_id, version, type, tx_id, occurred_at, payload)
       values ($1, 'customers', 'vip1', 1, 'CustomerVipGranted', pg_current_xact_id(), now(), $2::jsonb) returning id, tx_id)
     insert into cdc.outbox (event_id, tx_id) select id, tx_id from e`,
    [id, JSON.stringify({ id, type: 'CustomerVipGranted' })],
  )
  const messages = await readUntil(env, [`${env.config.kafka.clientId}.vip`], (ms) => ms.length >= 1)
  expect(messages[0]!.headers[EventHeaders.id]).toBe(id)
}, 60_000)

test('the capture trigger end to end: an insert into customers reaches Kafka', async () => {
  const db = env.rt.db()
  const [row] = await db.query<{ id: number }>(`insert into customers (name, email) values ('Ada', 'ada@example.com') returning id`)
  const messages = await readUntil(env, [`${env.tag}.customers`], (ms) => ms.some((m) => m.key === String(row!.id)))
  const m = messages.find((x) => x.key === String(row!.id))!
  expect(m.headers[EventHeaders.type]).toBe('CustomerCreated')
}, 60_000)

test('capture.mode "emit" with a poll relay is a config error (exit code 2), not a silent no-op', async () => {
  const proc = Bun.spawn([process.execPath, 'run', 'src/cli.ts', 'relay', '--mode', 'poll'], {
    cwd: ROOT,
    env: { ...process.env, CDC_POSTGRES_URL: env.config.postgres.url, CDC_CAPTURE_MODE: 'emit' },
    stdout: 'ignore',
    stderr: 'pipe',
  })
  expect(await proc.exited).toBe(2)
  expect(await new Response(proc.stderr).text()).toContain('relay.mode')
}, 30_000)
