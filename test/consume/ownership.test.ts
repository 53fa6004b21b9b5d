// Partition ownership against the real MongoDB-wire server: each claim of a partition gets a new epoch, a former owner
// is fenced off (no batch stored, no park changed), and gaps are held only by their partition's owner.
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { Gaps } from '../../src/consume/gaps.ts'
import * as metrics from '../../src/consume/metrics.ts'
import { FencedError, Ownership } from '../../src/consume/ownership.ts'
import type { Store } from '../../src/clients/mongo.ts'
import { createTestEnv, type TestEnv } from '../support/env.ts'

let env: TestEnv
let store: Store

beforeAll(async () => {
  env = await createTestEnv()
  store = await env.rt.mongo()
})
afterAll(async () => {
  await env?.cleanup()
})

test('a later claim fences the former owner off; its park state is loaded at the claim', async () => {
  const topic = `${env.tag}.customers`
  await store.collection('cdc_parked').insertMany([
    { _id: `${topic}/a`, topic, partition: 1, key: 'a', head: 'h1', error: 'e', at: 'now', release: [] },
    { _id: `${topic}/b`, topic, partition: 2, key: 'b', head: 'h2', error: 'e', at: 'now', release: [] },
  ])
  const first = new Ownership(store, new Gaps(store), 'g', env.rt.log)
  first.onAssigned([{ topic, partition: 1 }], 1)
  const mine = (await first.acquire(topic, 1, 1))!
  expect(mine.parking.get(`${topic}/a`)?.head).toBe('h1')
  expect(mine.parking.get(`${topic}/b`)).toBeUndefined()
  await mine.fence()
  // A batch of an older assignment gets nothing.
  expect(await first.acquire(topic, 1, 0)).toBeNull()

  // Another process is given the partition while the first still works on a batch.
  const second = new Ownership(store, new Gaps(store), 'g', env.rt.log)
  second.onAssigned([{ topic, partition: 1 }], 1)
  const theirs = (await second.acquire(topic, 1, 1))!
  expect(theirs.epoch).toBe(mine.epoch + 1)
  await expect(mine.fence()).rejects.toBeInstanceOf(FencedError)
  const lifted = new Map([[`${topic}/a`, null]])
  await expect(mine.parking.save(lifted)).rejects.toBeInstanceOf(FencedError)
  expect(await store.collection('cdc_parked').findOne({ _id: `${topic}/a` })).not.toBeNull()
  await theirs.parking.save(lifted)
  expect(await store.collection('cdc_parked').findOne({ _id: `${topic}/a` })).toBeNull()
})

test("gaps are loaded with their partition (claimed or only assigned), dropped on revoke, and counted in cdc_consume_open_gaps", async () => {
  const topic = `${env.tag}.orders`
  const gaps = new Gaps(store)
  await gaps.mark('orders', 'o1', 3, 5, { topic, partition: 0 })
  await gaps.mark('orders', 'o2', 1, 4, { topic, partition: 1 })
  expect(metrics.openGaps.get()).toBe(2)
  gaps.retain([{ topic, partition: 1 }])
  expect(gaps.list().map((g) => g.aggregateId)).toEqual(['o2'])
  expect(metrics.openGaps.get()).toBe(1)

  const owner = new Gaps(store)
  await owner.load([{ topic, partition: 0 }])
  expect(owner.list().map((g) => [g.aggregateId, g.missing])).toEqual([['o1', 4]])
  // Not due before its first back-off, and later less often after each unchanged check.
  expect(owner.due()).toEqual([])
  expect(owner.due(Date.now() + 2_500)).toHaveLength(1)
  owner.backOff('orders', 'o1', Date.now())
  expect(owner.due(Date.now() + 3_000)).toEqual([])
  expect(owner.due(Date.now() + 4_500)).toHaveLength(1)

  // Assigned, never claimed (no batch comes): the gap is loaded anyway, and only for the partitions assigned.
  const idle = new Gaps(store)
  const ownership = new Ownership(store, idle, 'g', env.rt.log)
  ownership.onAssigned([{ topic, partition: 1 }], 7)
  await ownership.loadGaps()
  expect(idle.list().map((g) => g.aggregateId)).toEqual(['o2'])
  ownership.onRevoked()
  expect(idle.list()).toEqual([])
})
