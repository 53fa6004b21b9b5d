// The API in capture.mode "logical": writes carry who/why through the WAL, and POST /events answers with the id and
// version the relay assigned once it appended the event.
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { startRelay } from '../../src/relay/index.ts'
import type { Role } from '../../src/runtime.ts'
import { cleanupEnv } from '../relay/support.ts'
import { eventually } from '../support/env.ts'
import { createApiEnv, type ApiEnv } from './support.ts'

let env: ApiEnv
let relay: Role | undefined
beforeAll(async () => {
  env = await createApiEnv((c) => {
    c.capture.mode = 'logical'
  })
})
afterAll(async () => {
  await relay?.stop()
  await cleanupEnv(env)
})

test('POST /events waits for the relay: 201 with the id and version it assigned; who/why from the request', async () => {
  const headers = { 'x-actor': 'agent7', 'x-reason': 'call' }
  const created = await env.call('POST', '/customers', { body: { name: 'Ann', email: 'ann@example.com' }, headers })
  expect(created.status).toBe(201)
  const id = String(created.body.id)
  // nothing has history yet (no relay): a tracked aggregate without history is refused, as in every mode
  const early = await env.call('POST', '/events', { body: { aggregate: { type: 'customers', id }, type: 'CustomerContacted', data: {} }, headers })
  expect(early.status).toBe(404)

  relay = await startRelay(env.rt)
  await eventually(async () => (await env.rt.db().query('select 1 from cdc.event_store where aggregate_id = $1', [id])).length > 0, 30_000)
  const emitted = await env.call('POST', '/events', {
    body: { aggregate: { type: 'customers', id }, type: 'CustomerContacted', data: { channel: 'phone' } },
    headers,
  })
  expect(emitted.status).toBe(201)
  expect(emitted.body).toMatchObject({ aggregate: { type: 'customers', id }, version: 2, type: 'CustomerContacted' })
  const [stored] = await env.rt.db().query<{ payload: any }>('select payload from cdc.event_store where id = $1', [emitted.body.id])
  expect(stored!.payload).toMatchObject({ op: 'm', data: { channel: 'phone' }, actor: { id: 'agent7', source: 'api' }, reason: 'call' })
}, 60_000)

test('with the relay stopped, POST /events answers 202 after a bounded wait; the event is appended once a relay runs', async () => {
  await relay!.stop()
  relay = undefined
  const [c] = await env.rt.db().query<{ id: number }>(`select id from customers limit 1`)
  const id = String(c!.id)
  const pending = await env.call('POST', '/events', { body: { aggregate: { type: 'customers', id }, type: 'CustomerNoted', data: {} } })
  expect(pending.status).toBe(202)
  expect(pending.body).toMatchObject({ id: null, version: null, type: 'CustomerNoted' })
  relay = await startRelay(env.rt)
  await eventually(async () => (await env.rt.db().query(`select 1 from cdc.event_store where type = 'CustomerNoted' and aggregate_id = $1`, [id])).length === 1, 30_000)
}, 60_000)
