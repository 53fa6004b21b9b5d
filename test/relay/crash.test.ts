// kill -9 of a spawned `cdc relay` mid-batch while writers run, in both modes: after restarts every event is in Kafka,
// per aggregate in version order, and anything delivered twice is the identical event.
import { afterAll, describe, expect, test } from 'bun:test'
import { eventually } from '../support/env.ts'
import { allDelivered, checkDelivery, newWritten, readUntil, relayEnvs, writeTx } from './support.ts'

const envs = relayEnvs()
afterAll(() => envs.cleanup(), 30_000)

for (const mode of ['poll', 'wal'] as const) {
  describe(`${mode} mode`, () => {
    test('kill -9 mid-batch while writers run: nothing lost, order kept, duplicates identical', async () => {
      const env = await envs.create((c) => {
        c.relay.batchSize = 20
      })
      const db = env.rt.db()
      const written = newWritten()
      const writing = { on: true }
      // 4 writers, each owning 5 aggregates: per aggregate, transactions commit in version order.
      const writers = [0, 1, 2, 3].map(async (w) => {
        let i = 0
        while (writing.on) {
          const ids = [0, 1, 2, 3, 4].filter((k) => (i + k) % 2 === 0).map((k) => `w${w}a${k}`)
          await writeTx(db, written, ids)
          i++
          await Bun.sleep(2)
        }
      })
      let relay = envs.spawn(env, mode, 'r0')
      try {
        for (let round = 1; round <= 3; round++) {
          // Kill only once the relay is publishing (its leader log line is out and the outbox is being worked on).
          await eventually(async () => (await relay.log()).includes('"relay is the leader"'), 20_000)
          await Bun.sleep(700 + Math.random() * 500)
          await relay.kill9()
          await Bun.sleep(200)
          relay = envs.spawn(env, mode, `r${round}`)
        }
        writing.on = false
        await Promise.all(writers)
        expect(written.total).toBeGreaterThan(100)
        const messages = await readUntil(env, [`${env.tag}.customers`], allDelivered(written), 60_000)
        const { problems, distinct, duplicates } = checkDelivery(messages, written)
        expect(problems).toEqual([])
        expect(distinct).toBe(written.total)
        console.log(`${mode}: ${written.total} events, ${duplicates} redelivered duplicates`)
        // Everything published is eventually deleted from the outbox.
        await eventually(async () => (await db.query('select 1 from cdc.outbox limit 1')).length === 0, 20_000)
        await relay.stop()
      } catch (error) {
        writing.on = false
        // What the relays said is the evidence for a failure that happens once in many runs.
        for (const p of envs.procs.filter((p) => p.logPath.includes(env.tag))) {
          console.error(`--- ${p.logPath}\n${(await p.log()).split('\n').slice(-40).join('\n')}`)
        }
        throw error
      }
    }, 150_000)
  })
}
