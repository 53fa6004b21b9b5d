// How the MongoDB client classes what the server (FerretDB 1.24 on PostgreSQL here) answers to hostile documents and
// to slow or missing servers: the consumer's failure taxonomy rests on these kinds (docs/failures.md).
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { connectMongo, healingStore, StoreError, type Store } from '../../src/clients/mongo.ts'
import { createTestEnv, type TestEnv } from '../support/env.ts'

let env: TestEnv
let store: Store

beforeAll(async () => {
  env = await createTestEnv()
  store = await env.rt.mongo()
})
afterAll(async () => {
  await env.cleanup()
})

const failure = async (work: Promise<unknown>) => {
  const error = await work.then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(error).toBeInstanceOf(StoreError)
  return error as StoreError
}

describe('store failures', () => {
  test('documents the server will not keep are rejected (not transient), with their position when the server gives it', async () => {
    const c = store.collection('hostile')
    let nest: unknown = 1
    for (let i = 0; i < 200; i++) nest = [nest]
    const cases: [string, Record<string, unknown>, boolean][] = [
      // [name, document, whether the server names its position]
      ['NUL in a value (22P05)', { reason: 'a\u0000b' }, false],
      ['NUL in a field name (refused by the encoder)', { ['a\u0000b']: 1 }, false],
      ['dot in a field name', { 'a.b': 1 }, true],
      ['leading $ in a field name', { $where: 1 }, true],
      ['infinity', { x: Infinity }, true],
      ['nested arrays', { x: nest }, true],
      ['over 16 MiB', { x: 'y'.repeat(17 * 1024 * 1024) }, false],
    ]
    for (const [name, doc, positioned] of cases) {
      const e = await failure(c.insertMany([{ _id: `${name}-before` }, { _id: name, ...doc }, { _id: `${name}-after` }]))
      expect([name, e.kind, e.transient]).toEqual([name, 'rejected', false])
      if (positioned) expect([name, e.failed]).toEqual([name, [1]])
    }
    // Lone surrogates are not refused: the encoder writes U+FFFD.
    await c.insertMany([{ _id: 'surrogate', reason: 'a\ud800b' }])
    expect(await c.findOne({ _id: 'surrogate' })).toEqual({ _id: 'surrogate', reason: 'a\ufffdb' })
    // The same for a state update.
    await c.insertMany([{ _id: 's1', v: 1 }])
    const e = await failure(c.bulkWrite([{ updateOne: { filter: { _id: 's1' }, update: { $set: { r: 'x\u0000' } } } }]))
    expect([e.kind, e.failed]).toEqual(['rejected', [0]])
  }, 60_000)

  test('an operation over its server-side time limit is a timeout; an unreachable server is unreachable', async () => {
    const quick = healingStore(() => connectMongo({ url: env.config.mongo.url, database: env.config.mongo.database, maxTimeMs: 1 }))
    try {
      const c = quick.collection('hostile')
      // ~5 MB that the server reads whole (a regex is not pushed down): never within 1 ms (300 KB once was, on a quiet
      // machine, and FerretDB checks the time limit only while it reads)
      await c.insertMany(Array.from({ length: 5000 }, (_, i) => ({ _id: `t${i}`, x: i, pad: 'p'.repeat(1000) })))
      const e = await failure(c.find({ x: { $gt: -1 }, pad: { $regex: 'q' } }))
      expect([e.kind, e.code]).toEqual(['timeout', 50])
      // The client stays usable: a timeout replaces nothing.
      expect(await c.insertMany([{ _id: 'after-timeout' }])).toEqual({ inserted: 1, duplicates: [] })
    } finally {
      await quick.close()
    }
    const down = healingStore(() => connectMongo({ url: 'mongodb://127.0.0.1:1', database: 'x', serverSelectionTimeoutMs: 300 }))
    expect((await failure(down.ping())).kind).toBe('unreachable')
  }, 60_000)

  test('a collection swapped in or dropped under running writers: what meets it missing fails transiently (a conflict; a connection FerretDB closes); the swap brings the new collection with its indexes', async () => {
    const errors: string[] = []
    const transient = new Map<string, number>()
    let writing = true
    let n = 0
    const writer = async (w: number) => {
      while (writing) {
        const id = `w${w}-${n++}`
        try {
          const c = store.collection('swapped')
          await c.insertMany([{ _id: id, v: 1 }, { _id: `${id}b`, v: 1 }])
          await c.bulkWrite([{ updateOne: { filter: { _id: id, v: 1 }, update: { $set: { v: 2 } } } }])
          await c.findOne({ _id: id })
        } catch (e) {
          // FerretDB answers undefined_table (a conflict) and, now and then, panics and closes the connection (unreachable).
          if (e instanceof StoreError && e.transient) transient.set(e.kind, (transient.get(e.kind) ?? 0) + 1)
          else errors.push(e instanceof StoreError ? `${e.kind}: ${e.message}` : String(e))
        }
      }
    }
    const writers = [1, 2, 3, 4].map(writer)
    for (let i = 0; i < 15; i++) {
      const next = store.collection(`swapped__new`)
      await next.createIndexes([{ key: { v: 1 }, name: 'v' }])
      await next.insertMany([{ _id: `new${i}` }])
      await next.renameTo('swapped')
      // The target is the new collection (what writers added since may be there too), indexes included.
      expect(await store.collection('swapped').findOne({ _id: `new${i}` })).toEqual({ _id: `new${i}` })
      expect(await store.collection('swapped').indexNames()).toContain('v')
    }
    for (let i = 0; i < 15; i++) {
      await store.collection('swapped').drop()
      await Bun.sleep(5)
    }
    writing = false
    await Promise.all(writers)
    expect(errors).toEqual([])
    expect(n).toBeGreaterThan(100)
    // What a FerretDB swap moved aside is gone (it held the live documents: a count of 0 is a dropped collection).
    for (const k of [1, 2, 3]) expect(await store.collection(`swapped__replaced${k}`).count()).toBe(0)
    expect([...transient.keys()].filter((k) => k !== 'conflict' && k !== 'unreachable')).toEqual([])
  }, 120_000)
})
