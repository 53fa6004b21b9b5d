// Two relays: exactly one publishes; kill -9 of the leader hands over to the standby within a few seconds.
import { afterAll, expect, test } from 'bun:test'
import { createTestEnv, eventually, type TestEnv } from '../support/env.ts'
import { allDelivered, checkDelivery, isLeader, newWritten, prepareDb, readUntil, spawnRelay, writeTx, type RelayProcess, cleanupEnv } from './support.ts'

let env: TestEnv
const procs: RelayProcess[] = []

afterAll(async () => {
  for (const p of procs) await p.stop()
  if (env) await cleanupEnv(env)
}, 30_000)

test('one leader at a time; the standby takes over after kill -9', async () => {
  env = await createTestEnv()
  await prepareDb(env)
  const db = env.rt.db()
  const a = spawnRelay(env, 'poll', 'a')
  procs.push(a)
  await eventually(() => isLeader(a), 20_000)
  const b = spawnRelay(env, 'poll', 'b')
  procs.push(b)
  await eventually(async () => (await b.log()).includes('relay standby'), 20_000)
  expect(await isLeader(b)).toBe(false)

  const written = newWritten()
  for (let i = 0; i < 20; i++) await writeTx(db, written, [`k${i % 4}`])
  await readUntil(env, [`${env.tag}.customers`], allDelivered(written))
  expect(await isLeader(b)).toBe(false)

  await a.kill9()
  const killedAt = Date.now()
  await eventually(() => isLeader(b), 15_000, 100)
  const takeoverMs = Date.now() - killedAt
  console.log(`takeover after kill -9: ${takeoverMs} ms`)
  expect(takeoverMs).toBeLessThan(10_000)

  for (let i = 0; i < 20; i++) await writeTx(db, written, [`k${i % 4}`])
  const messages = await readUntil(env, [`${env.tag}.customers`], allDelivered(written))
  expect(checkDelivery(messages, written).problems).toEqual([])
}, 90_000)

test('a leader whose lock session is terminated stops and a standby takes over', async () => {
  const c = spawnRelay(env, 'poll', 'c')
  procs.push(c)
  const [b] = procs.slice(1, 2)
  await eventually(async () => (await c.log()).includes('relay standby'), 20_000)
  // Cut the leader's lock connection from the server side (as a network failure or admin would).
  await env.rt.db().query(`select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'cdc-relay-leader' and datname = current_database() and pid in (select pid from pg_locks where locktype = 'advisory' and granted)`)
  await eventually(async () => (await b!.log()).includes('relay leadership lost'), 15_000)
  await eventually(async () => (await isLeader(b!)) !== (await isLeader(c)), 15_000)
  const written = newWritten()
  for (let i = 0; i < 10; i++) await writeTx(env.rt.db(), written, [`z${i % 2}`])
  const messages = await readUntil(env, [`${env.tag}.customers`], allDelivered(written))
  expect(checkDelivery(messages, written).problems).toEqual([])
}, 90_000)
