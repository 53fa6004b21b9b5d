// The trigger builds the envelope as JSON text (cdc.envelope in sql/definitions/events.sql): every string must come out escaped and equal to
// what was written, and in emit mode the WAL message text must be the same envelope as the event store's.
import { afterAll, beforeAll, expect, test } from 'bun:test'
import type { TestEnv } from '../support/env.ts'
import { decodedMessages, migratedEnv, storedEvents, withSettings } from './support.ts'

const NASTY = `quote " backslash \\ newline \n tab \t unicode ü ✓ 🙂 percent % colon : brace } ctrl \u0001`

let env: TestEnv
beforeAll(async () => {
  env = await migratedEnv((c) => {
    c.capture.mode = 'emit'
  })
})
afterAll(() => env.cleanup())

const db = () => env.rt.db()

test('strings with quotes, backslashes, control and non-ASCII characters survive in every field', async () => {
  const messages = await decodedMessages(db(), `slot_${env.tag}_text`, () =>
    withSettings(db(), { actor: NASTY, reason: NASTY, correlation_id: NASTY, causation_id: NASTY, source: 'api' }, async (tx) => {
      const [c] = await tx.query<{ id: string }>(`insert into customers (name, email, address) values ($1, 'nasty@example.com', $1) returning id`, [NASTY])
      await tx.query(`update customers set address = $2 where id = $1`, [c!.id, `${NASTY} 2`])
      await tx.query(`delete from customers where id = $1`, [c!.id])
    }),
  )
  const events = await storedEvents(db(), 'customers')
  expect(events.map((e) => e.op)).toEqual(['c', 'u', 'd'])
  for (const e of events) {
    expect(e).toMatchObject({ actor: { id: NASTY, source: 'api' }, reason: NASTY, correlationId: NASTY, causationId: NASTY })
  }
  expect(events[0]!.after).toMatchObject({ name: NASTY, address: NASTY })
  expect(events[1]!.changes).toEqual([{ path: 'address', before: NASTY, after: `${NASTY} 2` }])
  expect(events[2]!.before).toMatchObject({ address: `${NASTY} 2` })

  // emit mode: no outbox row, and each WAL message is the stored envelope
  const [outbox] = await db().query<{ n: number }>(`select count(*)::int as n from cdc.outbox`)
  expect(outbox!.n).toBe(0)
  expect(messages.every((m) => m.data.startsWith('message: transactional: 1 prefix: cdc,'))).toBe(true)
  expect(messages.map((m) => m.content)).toEqual(events)
})

test('numbers, booleans, timestamps and nulls in row images keep their JSON types', async () => {
  await db().query(`create table public.kinds (id text primary key, n numeric(12,2), f float8, b boolean, t timestamptz, j jsonb, a int[], z text)`)
  await env.rt.db().query(`select cdc.track('public', 'kinds', $1::text::jsonb)`, [
    JSON.stringify({ aggregate: 'Kind', mode: 'emit', exclude: [], mask: [], incidental: [], rules: [] }),
  ])
  await db().query(
    `insert into public.kinds values ('k"1', 12.50, 1.5e300, true, '2026-01-02T03:04:05.000006Z', '{"x": [1, "y"]}', '{1,2}', null)`,
  )
  const [event] = await storedEvents(db(), 'kinds')
  expect(event!.aggregate).toEqual({ type: 'kinds', id: 'k"1' })
  const { t, ...rest } = event!.after as { t: string }
  expect(rest).toEqual({ id: 'k"1', n: 12.5, f: 1.5e300, b: true, j: { x: [1, 'y'] }, a: [1, 2], z: null })
  expect(t).toMatch(/^2026-01-02T\d\d:04:05\.000006[+-]\d\d:\d\d$/)
})
