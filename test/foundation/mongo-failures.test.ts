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
})
