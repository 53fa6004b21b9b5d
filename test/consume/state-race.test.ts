// The read model's slow path when another writer moves a state between its read and its guarded write: with
// per-type topics one aggregate's versions arrive through several partitions, whose batches run at once. The race is
// caused for real, through the writer's store: right before the settle's state write, another writer applies the
// missing version (as that version's own batch does), on the same FerretDB.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import type { Collection, Doc, Store } from '../../src/clients/mongo.ts'
import { Gaps } from '../../src/consume/gaps.ts'
import { historyDoc, recordDays } from '../../src/consume/history.ts'
import { StateWriter } from '../../src/consume/state.ts'
import type { CdcEvent } from '../../src/events.ts'
import { createLogger } from '../../src/log.ts'
import { createTestEnv, type TestEnv } from '../support/env.ts'
import { event } from './support.ts'

let env: TestEnv
let store: Store
const quiet = createLogger({ test: 'state-race' }, () => {})
const here = { topic: 'customers.CustomerUpdated', partition: 0 }

beforeAll(async () => {
  env = await createTestEnv()
  store = await env.rt.mongo()
})
afterAll(async () => {
  await env.cleanup()
})

/** The history as the consumer stores it (written before any state write, as a batch does). */
async function stored(events: CdcEvent[]) {
  await recordDays(store, 'customers', events)
  await store.collection('customers_history').insertMany(events.map((e, i) => historyDoc(e, { topic: here.topic, partition: 0, offset: String(i), key: e.aggregate.id, value: null, headers: {}, timestamp: '0' }, e.occurredAt)))
}

/** `store`, except that its next `times` state writes first run `before` (another writer moving the state). */
function racing(times: number, before: () => Promise<void>): Store {
  let left = times
  return {
    ...store,
    collection<T extends Doc = Doc>(name: string): Collection<T> {
      const c = store.collection<T>(name)
      if (name !== 'customers_state') return c
      return {
        ...c,
        async bulkWrite(ops) {
          if (left > 0) {
            left--
            await before()
          }
          return c.bulkWrite(ops)
        },
      }
    },
  }
}

const version = async (id: string) => (await store.collection('customers_state').findOne({ _id: id }))?.version

describe('state writer races', () => {
  test('a settle whose write another writer beat settles again: the state reaches the last version', async () => {
    const e = [1, 2, 3, 4, 5].map((v) => event('customers', 'race-1', v))
    await stored(e.slice(0, 3))
    await new StateWriter(store, new Gaps(store), quiet).apply('customers', e.slice(0, 3), here)
    expect(await version('race-1')).toBe(3)
    await stored(e.slice(3))
    // Version 4's batch (another topic) moves the state to 4 right after our settle read it at 3.
    const other = new StateWriter(store, new Gaps(store), quiet)
    const writer = new StateWriter(racing(1, () => other.apply('customers', [e[3]!], here).then(() => {})), new Gaps(store), quiet)
    await writer.settle('customers', ['race-1'], here)
    expect(await version('race-1')).toBe(5)
    expect(await store.collection('cdc_gaps').find({ aggregateId: 'race-1' })).toEqual([])
  })

  test('a state that keeps moving under every pass is left as a gap for the sweep, which settles it', async () => {
    const e = Array.from({ length: 10 }, (_, i) => event('customers', 'race-2', i + 1))
    await stored(e.slice(0, 2))
    await new StateWriter(store, new Gaps(store), quiet).apply('customers', e.slice(0, 2), here)
    await stored(e.slice(2))
    // Before each of its four passes writes, another writer moves the state one version on.
    const other = new StateWriter(store, new Gaps(store), quiet)
    let next = 2
    const gaps = new Gaps(store)
    const writer = new StateWriter(racing(4, () => other.apply('customers', [e[next++]!], here).then(() => {})), gaps, quiet)
    await writer.settle('customers', ['race-2'], here)
    expect(await version('race-2')).toBe(6)
    const [gap] = await store.collection('cdc_gaps').find({ aggregateId: 'race-2' })
    expect(gap).toMatchObject({ stateVersion: 5, seenUpTo: 10 })
    // The sweep's re-check: the state moved past the gap's version, so it settles.
    for (const due of gaps.list()) await writer.recheck(due, here)
    expect(await version('race-2')).toBe(10)
    expect(await store.collection('cdc_gaps').find({ aggregateId: 'race-2' })).toEqual([])
  })
})
