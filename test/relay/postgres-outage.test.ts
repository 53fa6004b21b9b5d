// PostgreSQL connections of a running relay cut from the server side (as in a restart or network failure): the relay
// reconnects on its own, regains leadership and publishes everything, in both modes.
import { afterAll, expect, test } from 'bun:test'
import { connect } from '../../src/clients/postgres.ts'
import { eventually } from '../support/env.ts'
import { allDelivered, checkDelivery, newWritten, readUntil, relayEnvs, writeTx } from './support.ts'

const envs = relayEnvs()
afterAll(() => envs.cleanup(), 30_000)

for (const mode of ['poll', 'wal'] as const) {
  test(`${mode}: every relay connection terminated, twice`, async () => {
    const env = await envs.create()
    const relay = envs.spawn(env, mode, 'pgcut')
    // Writes through a connection of their own, so cutting the relay's connections leaves the writer alone.
    const db = connect({ url: env.config.postgres.url, max: 2, name: 'cdc-test-writer' })
    const written = newWritten()
    for (let i = 0; i < 10; i++) await writeTx(db, written, [`a${i % 2}`])
    await readUntil(env, [`${env.tag}.customers`], allDelivered(written))
    const admin = connect({ url: env.config.postgres.url, max: 1, name: 'cdc-test-admin' })
    try {
      const wanted = mode === 'wal' ? ['cdc-relay-leader', 'cdc-relay-wal'] : ['cdc-relay-leader']
      for (let round = 0; round < 2; round++) {
        // Back to full strength first (leader lock, and for wal the replication connection).
        await eventually(async () => {
          const rows = await admin.query<{ application_name: string }>(
            'select application_name from pg_stat_activity where datname = current_database()',
          )
          return wanted.every((name) => rows.some((r) => r.application_name === name))
        }, 30_000)
        const killed = await admin.query(
          `select pg_terminate_backend(pid) from pg_stat_activity
            where datname = current_database() and pid <> pg_backend_pid() and (application_name like 'cdc-relay%' or application_name = 'cdc')`,
        )
        expect(killed.length).toBeGreaterThan(0)
        // Writers go on meanwhile (the test's own pool reconnects too).
        for (let i = 0; i < 10; i++) await writeTx(db, written, [`a${i % 2}`, `b${i % 3}`])
        await Bun.sleep(500)
      }
    } finally {
      await admin.end()
    }
    const messages = await readUntil(env, [`${env.tag}.customers`], allDelivered(written), 60_000)
    expect(checkDelivery(messages, written).problems).toEqual([])
    await eventually(async () => (await db.query('select 1 from cdc.outbox limit 1')).length === 0, 20_000)
    expect(await relay.log()).toContain('relay leadership lost')
    await relay.stop()
    await db.end()
  }, 120_000)
}
