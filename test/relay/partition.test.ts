// The relay (its own process) cut off from PostgreSQL again and again while Kafka stays reachable (a TCP proxy drops
// its connections and refuses new ones for a while): it must live through every cut, take the lead again, and publish
// everything written meanwhile. The long chaos run saw a poll relay die of a query rejection postgres.js raised while
// destroying a dropped connection (now logged, not fatal), and a logical relay stop publishing after it lost the lead
// (a query on a connection Bun's socket ended without 'close' waited for good: patches/postgres@3.4.9.patch).
import { afterAll, expect, test } from 'bun:test'
import { startProxy } from '../../bench/tcp-proxy.ts'
import { EventHeaders } from '../../src/events.ts'
import { eventually } from '../support/env.ts'
import { readUntil, relayEnvs } from './support.ts'

const envs = relayEnvs()
afterAll(() => envs.cleanup(), 60_000)

for (const capture of ['outbox', 'logical'] as const) {
  test(`${capture}: cut off from PostgreSQL five times while events flow, the relay lives on and publishes all of them`, async () => {
    const env = await envs.create((c) => {
      c.capture.mode = capture
      c.capture.tracked = ['customers']
      c.capture.roots = {}
      c.relay.retryMaxMs = 1000
      c.relay.heartbeatMs = 300
    })
    const url = new URL(env.config.postgres.url)
    const proxy = startProxy({ host: url.hostname, port: Number(url.port) })
    url.port = String(proxy.port)
    const relay = envs.spawn(env, capture === 'logical' ? 'wal' : 'poll', `cut-${capture}`, {
      CDC_POSTGRES_URL: url.toString(),
      CDC_CAPTURE_MODE: capture,
      CDC_RELAY_RETRY_MAX_MS: '1000',
    })
    try {
      const db = env.rt.db()
      let written = 0
      let writing = true
      const writer = (async () => {
        while (writing) {
          await db.query('insert into customers (name, email) values ($1, $2)', [`cut ${written}`, `cut${written}@x`])
          written++
          await Bun.sleep(10)
        }
      })()
      for (let i = 0; i < 5; i++) {
        await Bun.sleep(1500)
        await proxy.cut(2000)
      }
      await Bun.sleep(1000)
      writing = false
      await writer
      const created = (m: { headers: Record<string, string> }) => m.headers[EventHeaders.type] === 'CustomerCreated'
      const messages = await readUntil(env, [`${env.tag}.customers`], (ms) => new Set(ms.filter(created).map((m) => m.key)).size >= written, 120_000)
      expect(new Set(messages.filter(created).map((m) => m.key)).size).toBe(written)
      await eventually(async () => relay.proc.exitCode === null && (await relay.log()).includes('"relay is the leader"'), 5_000)
      expect({ exitCode: relay.proc.exitCode, signal: relay.proc.signalCode }).toEqual({ exitCode: null, signal: null })
    } catch (error) {
      console.error(`--- ${relay.logPath}\n${(await relay.log()).split('\n').slice(-40).join('\n')}`)
      throw error
    } finally {
      await relay.stop()
      proxy.close()
    }
  }, 240_000)
}
