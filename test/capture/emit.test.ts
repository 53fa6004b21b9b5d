// cdc.emit(): application events on the same path and version sequence; emit mode writes WAL messages, no outbox.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import type { TestEnv } from '../support/env.ts'
import { decodedMessages, migratedEnv, storedEvents, withSettings } from './support.ts'

describe('outbox mode', () => {
  let env: TestEnv
  beforeAll(async () => {
    env = await migratedEnv()
  })
  afterAll(() => env.cleanup())
  const db = () => env.rt.db()

  test('rolled back → nothing; committed → between the row changes of its transaction, same who/why', async () => {
    const [c] = await db().query<{ id: number }>(`insert into customers (name, email) values ('Ann', 'ann@x') returning id`)
    const id = String(c!.id)
    await db()
      .begin(async (tx) => {
        await tx.query(`select cdc.emit('customers', $1, 'CustomerContacted', '{"channel":"mail"}')`, [id])
        throw new Error('roll back')
      })
      .catch(() => {})
    await withSettings(db(), { actor: 'agent7', reason: 'call', correlation_id: 'req-9' }, async (tx) => {
      await tx.query(`update customers set phone = '1' where id = $1`, [id])
      await tx.query(`select cdc.emit('customers', $1, 'CustomerContacted', $2::text::jsonb)`, [id, JSON.stringify({ channel: 'phone' })])
      await tx.query(`update customers set phone = '2' where id = $1`, [id])
    })
    const events = (await storedEvents(db(), 'customers')).filter((e) => e.aggregate.id === id)
    expect(events.map((e) => [e.type, e.op, e.version, e.tx.index])).toEqual([
      ['CustomerCreated', 'c', 1, 0],
      ['CustomerUpdated', 'u', 2, 0],
      ['CustomerContacted', 'm', 3, 1],
      ['CustomerUpdated', 'u', 4, 2],
    ])
    expect(events[2]).toMatchObject({
      data: { channel: 'phone' },
      before: null,
      after: null,
      changes: [],
      actor: { id: 'agent7', source: 'sql' },
      reason: 'call',
      correlationId: 'req-9',
    })
    const [outbox] = await db().query<{ n: number }>(
      `select count(*)::int as n from cdc.outbox o join cdc.event_store e on e.id = o.event_id where e.type = 'CustomerContacted'`,
    )
    expect(outbox!.n).toBe(1)
  })

  test('concurrent emitters on one aggregate get gapless versions', async () => {
    await Promise.all(
      Array.from({ length: 40 }, (_, i) => db().query(`select cdc.emit('tickets', 'T-1', 'TicketNoted', $1::text::jsonb)`, [JSON.stringify({ i })])),
    )
    const events = await storedEvents(db(), 'tickets')
    expect(events.map((e) => e.version)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1))
  })

  test('emitters and row writers of one tracked row never collide on a version', async () => {
    const [c] = await db().query<{ id: number }>(`insert into customers (name, email) values ('Hot', 'hot@x') returning id`)
    const id = String(c!.id)
    await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        i % 2 === 0
          ? db().query(`select cdc.emit('customers', $1, 'CustomerPinged', '{}')`, [id])
          : db().query(`update customers set phone = $2 where id = $1`, [id, `p${i}`]),
      ),
    )
    const events = (await storedEvents(db(), 'customers')).filter((e) => e.aggregate.id === id)
    expect(events.map((e) => e.version)).toEqual(Array.from({ length: 31 }, (_, i) => i + 1))
  })

  test('bad arguments are refused', async () => {
    const error = await db()
      .query(`select cdc.emit('Bad Type', '1', 'X', '{}')`)
      .then(() => null, (e: Error) => e)
    expect(error?.message).toContain('is neither a tracked table nor a lower-case identifier')
  })

  test('trim_outbox drops old rows, requeue puts them back from the event store', async () => {
    const [before] = await db().query<{ n: number }>('select count(*)::int as n from cdc.outbox')
    const [trimmed] = await db().query<{ n: number }>(`select cdc.trim_outbox('0 seconds') as n`)
    expect(trimmed!.n).toBe(before!.n)
    const [requeued] = await db().query<{ n: number }>(`select cdc.requeue(now() - interval '1 hour') as n`)
    expect(requeued!.n).toBe(before!.n)
  })

  test('requeue takes whole transactions (the relay counts tx.size from them), even when `since` falls inside one', async () => {
    await db().query(`select cdc.trim_outbox('0 seconds')`)
    const since = await db().begin(async (tx) => {
      await tx.query(`insert into products (category, name, price) values ('a', 'first', 1)`)
      await tx.query('select pg_sleep(0.05)')
      const [t] = await tx.query<{ at: string }>('select clock_timestamp()::text as at')
      await tx.query(`insert into products (category, name, price) values ('a', 'second', 1), ('a', 'third', 1)`)
      return t!.at
    })
    await db().query(`select cdc.trim_outbox('0 seconds')`)
    const [requeued] = await db().query<{ n: number }>('select cdc.requeue($1::timestamptz) as n', [since])
    expect(requeued!.n).toBe(3)
    const [tx] = await db().query<{ n: number }>('select count(distinct tx_id)::int as n from cdc.outbox')
    expect(tx!.n).toBe(1)
  })
})

describe('emit mode', () => {
  let env: TestEnv
  beforeAll(async () => {
    env = await migratedEnv((c) => {
      c.capture.mode = 'emit'
    })
  })
  afterAll(() => env.cleanup())
  const db = () => env.rt.db()

  test('events go to the event store and as transactional WAL messages, never to the outbox', async () => {
    const messages = await decodedMessages(db(), `slot_${env.tag}_emit`, async () => {
      await db().query(`insert into products (category, name, price) values ('a', 'b', 1)`)
      await db().begin(async (tx) => {
        await tx.query(`insert into products (category, name, price) values ('a', 'ghost', 1)`)
        await tx.query(`select cdc.emit('products', '99', 'ProductNoted', '{}')`)
        throw new Error('roll back')
      }).catch(() => {})
      await db().query(`select cdc.emit('products', '1', 'ProductNoted', '{"x":1}')`)
    })
    const stored = await storedEvents(db(), 'products')
    expect(messages.map((m) => (m.content as { id: string }).id)).toEqual(stored.map((e) => e.id))
    expect(stored.map((e) => e.type)).toEqual(['ProductCreated', 'ProductNoted'])
    expect(messages.every((m) => m.data.includes('transactional: 1 prefix: cdc'))).toBe(true)
    const [outbox] = await db().query<{ n: number }>('select count(*)::int as n from cdc.outbox')
    expect(outbox!.n).toBe(0)
  })
})
