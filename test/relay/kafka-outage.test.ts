// Kafka stopped while events are written: writers are never blocked, the outbox grows, and once Kafka is back the
// relay publishes everything on its own (capped exponential backoff in between).
import { afterAll, expect, test } from 'bun:test'
import { eventually, stackCtl } from '../support/env.ts'
import { startRelay } from '../../src/relay/index.ts'
import { relayMetrics } from '../../src/relay/metrics.ts'
import type { Role } from '../../src/runtime.ts'
import { allDelivered, checkDelivery, newWritten, readUntil, relayEnvs, writeTx } from './support.ts'

const envs = relayEnvs()
let relay: Role | undefined


afterAll(async () => {
  await stackCtl('up', 'kafka') // restore it whatever happened
  await relay?.stop()
  await envs.cleanup()
}, 30_000)

for (const mode of ['poll', 'wal'] as const) {
  test(`${mode}: Kafka down and back up`, async () => {
    const env = await envs.create((c) => {
      c.relay.retryMaxMs = 2000
      c.relay.heartbeatMs = 500
    })
    relay = await startRelay(env.rt, { mode })
    const db = env.rt.db()
    const written = newWritten()
    for (let i = 0; i < 10; i++) await writeTx(db, written, [`a${i % 3}`])
    await readUntil(env, [`${env.tag}.customers`], allDelivered(written))
    try {
      await stackCtl('down', 'kafka')
      const started = performance.now()
      for (let i = 0; i < 50; i++) await writeTx(db, written, [`a${i % 3}`, `b${i % 5}`])
      const writeMs = performance.now() - started
      expect(writeMs).toBeLessThan(10_000) // writers are not blocked by Kafka
      if (mode === 'poll') {
        const [row] = await db.query<{ n: number }>('select count(*)::int as n from cdc.outbox')
        expect(row!.n).toBe(100)
      }
      // The backlog and the age of its oldest event show up in the metrics while Kafka is away.
      await eventually(async () => relayMetrics.backlog.get({ mode }) >= 100 && relayMetrics.lag.get({ mode }) > 0, 20_000)
      await eventually(async () => relayMetrics.errors.get({ mode }) > 0, 20_000)
    } finally {
      await stackCtl('up', 'kafka')
    }
    const messages = await readUntil(env, [`${env.tag}.customers`], allDelivered(written), 150_000) // a broker with many partitions takes a while to load them
    expect(checkDelivery(messages, written).problems).toEqual([])
    await eventually(async () => (await db.query('select 1 from cdc.outbox limit 1')).length === 0, 30_000)
    await relay.stop()
    relay = undefined
  }, 300_000)
}
