// The PostgreSQL server itself stopped and restarted under a running relay: it keeps retrying with capped backoff,
// reconnects on its own (leader lock, LISTEN, replication slot), and publishes everything committed before and after
// the outage, in order per aggregate.
import { afterAll, expect, test } from 'bun:test'
import { eventually, stackCtl } from '../support/env.ts'
import { startRelay } from '../../src/relay/index.ts'
import type { Role } from '../../src/runtime.ts'
import { allDelivered, checkDelivery, newWritten, readUntil, relayEnvs, writeTx } from './support.ts'

const envs = relayEnvs()
let relay: Role | undefined

afterAll(async () => {
  await stackCtl('up') // restore every server whatever happened
  await relay?.stop()
  await envs.cleanup()
}, 60_000)

for (const mode of ['poll', 'wal'] as const) {
  test(`${mode}: PostgreSQL stopped and restarted`, async () => {
    const env = await envs.create((c) => {
      c.relay.retryMaxMs = 1000
      c.relay.heartbeatMs = 500
    })
    relay = await startRelay(env.rt, { mode })
    const db = env.rt.db()
    const written = newWritten()
    for (let i = 0; i < 20; i++) await writeTx(db, written, [`a${i % 3}`, `b${i % 4}`])
    await readUntil(env, [`${env.tag}.customers`], allDelivered(written))
    try {
      // Written right before the stop: some of these may still be in flight when the server goes away.
      for (let i = 0; i < 20; i++) await writeTx(db, written, [`a${i % 3}`, `c${i % 5}`])
      await stackCtl('down', 'postgres')
      await Bun.sleep(3000) // a few polls and backoff rounds against a server that is gone
    } finally {
      await stackCtl('up', 'postgres')
    }
    // The writers' own pool reconnects too; only committed transactions count as written.
    await eventually(async () => {
      await writeTx(db, written, ['a0'])
      return true
    }, 30_000)
    for (let i = 0; i < 20; i++) await writeTx(db, written, [`a${i % 3}`, `d${i % 4}`])
    const messages = await readUntil(env, [`${env.tag}.customers`], allDelivered(written), 90_000)
    const { problems, distinct } = checkDelivery(messages, written)
    expect(problems).toEqual([])
    expect(distinct).toBe(written.total)
    await eventually(async () => (await db.query('select 1 from cdc.outbox limit 1')).length === 0, 30_000)
    await relay.stop()
    relay = undefined
  }, 180_000)
}
