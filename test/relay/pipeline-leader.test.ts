// One leader per pipeline (the database's outbox), whatever the transactional id: a relay configured with another
// transactional id is a standby, says so in its log, and takes over when the leader goes away.
import { afterAll, expect, test } from 'bun:test'
import { createTestEnv, eventually, type TestEnv } from '../support/env.ts'
import { freePort, get, sample } from '../support/ops.ts'
import { allDelivered, checkDelivery, cleanupEnv, isLeader, newWritten, prepareDb, readUntil, spawnRelay, writeTx, type RelayProcess } from './support.ts'

let env: TestEnv
const procs: RelayProcess[] = []

afterAll(async () => {
  for (const p of procs) await p.stop()
  if (env) await cleanupEnv(env)
}, 30_000)

test('two relays with different transactional ids on one database: one leader, one standby, no duplicate publishing', async () => {
  env = await createTestEnv()
  await prepareDb(env)
  const [portA, portB] = [freePort(), freePort()]
  const leaderGauge = async (port: number) => sample((await get(port, '/metrics')).text, 'cdc_relay_leader')
  const a = spawnRelay(env, 'poll', 'tid-a', { CDC_RELAY_TRANSACTIONAL_ID: `${env.tag}-first`, CDC_OPS_PORT: String(portA) })
  procs.push(a)
  await eventually(() => isLeader(a), 20_000)
  const b = spawnRelay(env, 'wal', 'tid-b', { CDC_RELAY_TRANSACTIONAL_ID: `${env.tag}-second`, CDC_OPS_PORT: String(portB) })
  procs.push(b)
  await eventually(async () => (await b.log()).includes('relay standby'), 20_000)
  const standby = (await b.log()).split('\n').find((l) => l.includes('relay standby'))!
  expect(JSON.parse(standby)).toMatchObject({ level: 'info', leaderPid: expect.any(Number) })
  expect(await isLeader(b)).toBe(false)
  // The metrics say the same: 1 on the leader, 0 on the standby; readiness reports it too.
  expect(await eventually(async () => (await leaderGauge(portA)) === 1, 10_000)).toBe(true)
  expect(await leaderGauge(portB)).toBe(0)
  expect(JSON.parse((await get(portB, '/readyz')).text)).toMatchObject({ status: 'ready', relayLeader: false })

  const written = newWritten()
  for (let i = 0; i < 20; i++) await writeTx(env.rt.db(), written, [`k${i % 4}`])
  const messages = await readUntil(env, [`${env.tag}.customers`], allDelivered(written))
  const check = checkDelivery(messages, written)
  expect(check.problems).toEqual([])
  expect(check.duplicates).toBe(0)
  expect(await isLeader(b)).toBe(false)

  await a.stop()
  await eventually(() => isLeader(b), 20_000, 100)
  expect(await eventually(async () => (await leaderGauge(portB)) === 1, 10_000)).toBe(true)
  for (let i = 0; i < 10; i++) await writeTx(env.rt.db(), written, [`k${i % 4}`])
  expect(checkDelivery(await readUntil(env, [`${env.tag}.customers`], allDelivered(written)), written).problems).toEqual([])
}, 120_000)
