// A seeded, reproducible fuzz of the consumer (issue 13): 1,000+ generated messages (random bytes, valid envelopes with
// hostile strings — NUL, lone surrogates, ~1 MB fields, deep nesting —, numbers out of range, wrong types, unknown
// tables, key mismatches, tombstones, huge, odd and null keys, hostile headers) in one burst with good traffic. Asserts:
// no stall (the good aggregates and a probe after the burst are stored, cdc_consume_stalled never 1), nothing good lost,
// every generated message either stored or in the DLQ — exactly one of the two — and the ones no store can keep all in
// the DLQ. CDC_FUZZ_SEED=<n> replays a run; the figures go to stderr.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import type { OutMessage } from '../../src/clients/kafka.ts'
import { startConsumer } from '../../src/consume/index.ts'
import * as metrics from '../../src/consume/metrics.ts'
import { EventHeaders } from '../../src/events.ts'
import type { Role } from '../../src/runtime.ts'
import { createTestEnv, eventually, type TestEnv } from '../support/env.ts'
import { ensureTopics, event, history, message, publish, readAll, stateOf } from './support.ts'

const SEED = Number(process.env.CDC_FUZZ_SEED ?? 13)
const COUNT = 1000

let env: TestEnv
let consumer: Role | undefined

beforeAll(async () => {
  env = await createTestEnv((c) => {
    c.consume.tables = ['customers', 'orders']
  })
  await ensureTopics(env, [`${env.tag}.customers`, `${env.tag}.orders`])
  consumer = await startConsumer(env.rt)
})

afterAll(async () => {
  await consumer?.stop()
  await env?.cleanup()
})

/** mulberry32: small, fast, and the same sequence for the same seed everywhere. */
function prng(seed: number) {
  let a = seed >>> 0
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  return {
    next,
    int: (n: number) => Math.floor(next() * n),
    pick: <T>(list: readonly T[]) => list[Math.floor(next() * list.length)]!,
    bytes: (n: number) => Buffer.from(Array.from({ length: n }, () => Math.floor(next() * 256))),
  }
}

/** must: no MongoDB-wire server can keep it (or the envelope is invalid) → DLQ. may: stored or DLQ, exactly one. */
type Expect = 'dlq' | 'either'

interface Generated {
  cls: string
  expect: Expect
  message: OutMessage
  /** The event id, when the message is an envelope that could be stored. */
  eventId?: string
}

function generate(seed: number, topic: (table: string) => string): Generated[] {
  const r = prng(seed)
  const out: Generated[] = []
  for (let n = 0; n < COUNT; n++) {
    const id = `f${n}`
    const base = event('customers', id, 1)
    const envelope = (cls: string, expect: Expect, e: Record<string, unknown>, key: string | null = id): Generated => ({
      cls,
      expect,
      eventId: e.id as string,
      message: { topic: topic('customers'), key, value: JSON.stringify(e), headers: { 'fuzz-id': String(n) } },
    })
    const raw = (cls: string, key: string | null, value: string | Buffer | null, headers: Record<string, string> = {}): Generated => ({
      cls,
      expect: 'dlq',
      message: { topic: topic(r.next() < 0.8 ? 'customers' : 'orders'), key, value, headers: { ...headers, 'fuzz-id': String(n) } },
    })
    const roll = r.int(100)
    if (roll < 20) out.push(raw('random bytes', id, r.bytes(1 + r.int(2000))))
    else if (roll < 25) out.push(raw('random bytes, null key', null, r.bytes(1 + r.int(400))))
    else if (roll < 28) out.push(raw('tombstone', r.next() < 0.5 ? null : id, null))
    else if (roll < 31) out.push(raw('huge key', `${id}:${'k'.repeat(2_000 + r.int(30_000))}`, r.bytes(100)))
    else if (roll < 34) out.push(raw('odd key (NUL, lone surrogate)', `${id}\u0000\ud800${r.int(1000)}`, JSON.stringify(base)))
    else if (roll < 37) out.push(raw('hostile headers', id, r.bytes(50), { [EventHeaders.id]: `\u0000${'h'.repeat(5000)}`, [EventHeaders.version]: '\ud800' }))
    else if (roll < 47) {
      const where = r.pick(['reason', 'after', 'aggregate id', 'after key', 'actor'] as const)
      const nul = `x\u0000${r.int(1000)}`
      if (where === 'reason') out.push(envelope('NUL in a string', 'dlq', { ...base, reason: nul }))
      else if (where === 'after') out.push(envelope('NUL in a string', 'dlq', { ...base, after: { id, name: nul } }))
      else if (where === 'actor') out.push(envelope('NUL in a string', 'dlq', { ...base, actor: { id: nul, source: 'api' } }))
      else if (where === 'after key') out.push(envelope('NUL in a field name', 'dlq', { ...base, after: { id, [nul]: 1 } }))
      else {
        const aid = `${id}\u0000`
        out.push(envelope('NUL in a string', 'dlq', { ...base, aggregate: { type: 'customers', id: aid } }, aid))
      }
    } else if (roll < 53) out.push(envelope('lone surrogate', 'either', { ...base, reason: `r\ud800${r.int(10)}`, after: { id, name: '\udfff' } }))
    else if (roll < 58) {
      const depth = r.pick([50, 1000, 5000, 20_000, 100_000])
      // Built as text: the deepest ones are beyond what JSON.stringify can recurse into.
      const g = envelope('deep nesting', depth <= 50 ? 'either' : 'dlq', { ...base, after: { id, deep: '@deep' } })
      out.push({ ...g, message: { ...g.message, value: (g.message.value as string).replace('"@deep"', `${'{"n":'.repeat(depth)}0${'}'.repeat(depth)}`) } })
    } else if (roll < 59) {
      // ~1 MB fields are expensive to move around: a handful is enough.
      const big = out.filter((g) => g.cls === '~1 MB field').length < 3
      out.push(envelope(big ? '~1 MB field' : 'large field (100 kB)', 'either', { ...base, after: { id, blob: 'z'.repeat(big ? 1_000_000 - 2_000 : 100_000) } }))
    } else if (roll < 67) {
      const variant = r.pick(['infinity', 'version huge', 'version fraction', 'negative index', 'minus zero'] as const)
      if (variant === 'infinity') out.push({ ...envelope('number out of range', 'dlq', base), message: { ...envelope('', 'dlq', base).message, value: JSON.stringify(base).replace('"after":{', '"after":{"x":1e400,') } })
      else if (variant === 'version huge') out.push(envelope('number out of range', 'either', { ...base, version: 2 ** 60 }))
      else if (variant === 'version fraction') out.push(envelope('number out of range', 'dlq', { ...base, version: 1.5 }))
      else if (variant === 'negative index') out.push(envelope('number out of range', 'dlq', { ...base, tx: { id: '1', index: -1 } }))
      else out.push(envelope('number out of range', 'either', { ...base, after: { id, z: -0, big: 1e308, tiny: 5e-324 } }))
    } else if (roll < 77) {
      const variant = r.int(6)
      const wrong = [
        { ...base, version: '1' },
        { ...base, aggregate: null },
        { ...base, changes: {} },
        { ...base, actor: { id: 'a', source: 'nope' } },
        { ...base, schema: 2 },
        { ...base, occurredAt: 'yesterday' },
      ][variant]!
      out.push(envelope('wrong types', 'dlq', wrong))
    } else if (roll < 83) out.push(envelope('unknown table', 'dlq', { ...base, aggregate: { type: r.pick(['nosuch', 'pg_class', 'cdc_parked']), id } }))
    else if (roll < 88) out.push(envelope('key is not the aggregate id', 'dlq', base, `${id}-other`))
    else if (roll < 94) out.push(envelope('$ or . in a field name', 'dlq', { ...base, after: { id, [r.pick(['$where', 'a.b', '$'])]: 1 } }))
    else out.push(envelope('valid but odd (empty strings, unicode)', 'either', { ...base, reason: '', after: { id, name: '𝔘𝔫𝔦𝔠𝔬𝔡𝔢 ✓ \u202e' } }))
  }
  return out
}

describe('fuzz', () => {
  test(`≥ ${COUNT} generated hostile messages (seed ${SEED}): no stall, nothing good lost, every bad one in the DLQ`, async () => {
    const topic = (table: string) => `${env.tag}.${table}`
    const fuzz = generate(SEED, topic)
    // Good traffic of other aggregates, interleaved with the fuzz in the same sends.
    const good = Array.from({ length: 20 }, (_, a) => Array.from({ length: 10 }, (_, v) => event(a % 2 ? 'orders' : 'customers', `g${a}`, v + 1)))
    const sequence: OutMessage[] = []
    const goodQueue = good.flat()
    fuzz.forEach((f, i) => {
      sequence.push(f.message)
      if (i % 5 === 0 && goodQueue.length) sequence.push(message(env, goodQueue.shift()!))
    })
    sequence.push(...goodQueue.map((e) => message(env, e)))

    let maxStalled = 0
    const sampler = setInterval(() => {
      for (const t of [topic('customers'), topic('orders')]) {
        for (let p = 0; p < env.config.kafka.partitions; p++) maxStalled = Math.max(maxStalled, metrics.stalled.get({ topic: t, partition: String(p) }))
      }
    }, 100)
    const unreachableBefore = metrics.retries.get({ kind: 'unreachable' })
    const started = performance.now()
    try {
      for (let i = 0; i < sequence.length; i += 200) await publish(env, sequence.slice(i, i + 200))
      const published = performance.now()
      // No stall: a probe published after the burst is stored.
      const probe = event('orders', 'probe', 1)
      await publish(env, [message(env, probe)])
      await eventually(async () => (await stateOf(env, 'orders', 'probe'))?.version === 1, 60_000)
      const probeMs = performance.now() - published

      // Nothing good lost: every good aggregate complete, in version order.
      for (let a = 0; a < good.length; a++) {
        await eventually(async () => (await stateOf(env, a % 2 ? 'orders' : 'customers', `g${a}`))?.version === 10, 60_000)
      }

      // Everything consumed and committed; then every generated message is stored or dead-lettered, exactly one of the two.
      const kafka = env.rt.kafka()
      await eventually(
        async () => {
          const lags = [...(await kafka.lag(env.config.consume.groupId, topic('customers'))), ...(await kafka.lag(env.config.consume.groupId, topic('orders')))]
          return lags.every((p) => p.committed >= p.end)
        },
        90_000,
        1000,
      )
      const all = [...(await readAll(env, `${topic('customers')}.dlq`)), ...(await readAll(env, `${topic('orders')}.dlq`))]
      const ids = new Set(all.map((m) => m.headers['fuzz-id']).filter((id) => id !== undefined))
      const stored = new Set((await history(env, 'customers', { 'aggregate.id': { $regex: '^f' } })).map((d) => d._id as string))
      const dlq = { all, ids, stored }
      const elapsed = performance.now() - started
      const perClass = new Map<string, { tried: number; dlq: number; stored: number }>()
      const wrong: string[] = []
      fuzz.forEach((f, n) => {
        const inDlq = dlq.ids.has(String(n))
        const inHistory = f.eventId !== undefined && dlq.stored.has(f.eventId)
        const c = perClass.get(f.cls) ?? { tried: 0, dlq: 0, stored: 0 }
        perClass.set(f.cls, c)
        c.tried++
        if (inDlq) c.dlq++
        if (inHistory) c.stored++
        if (inDlq === inHistory || (f.expect === 'dlq' && !inDlq)) wrong.push(`#${n} ${f.cls}: dlq=${inDlq} stored=${inHistory}`)
      })
      // Good messages never reach the DLQ; no DLQ entry is unaccounted for.
      expect(dlq.all.filter((m) => m.headers['fuzz-id'] === undefined)).toEqual([])
      expect(dlq.all.length).toBe(dlq.ids.size)
      expect(wrong).toEqual([])
      const goodStored = (await history(env, 'customers', { 'aggregate.id': { $regex: '^g' } })).length + (await history(env, 'orders', { 'aggregate.id': { $regex: '^g' } })).length
      expect(goodStored).toBe(200)
      expect(maxStalled).toBe(0)
      expect(metrics.retries.get({ kind: 'unreachable' })).toBe(unreachableBefore)

      const table = [...perClass].map(([cls, c]) => `  ${cls.padEnd(40)} tried ${String(c.tried).padStart(4)}  dlq ${String(c.dlq).padStart(4)}  stored ${String(c.stored).padStart(4)}`)
      process.stderr.write(
        `fuzz seed ${SEED}: ${fuzz.length} generated + ${good.flat().length} good messages; DLQ ${dlq.ids.size}, stored ${dlq.stored.size}; ` +
          `stalls 0; lost 0; probe stored ${Math.round(probeMs)} ms after the burst was published; ${Math.round(elapsed / 1000)} s in all\n${table.join('\n')}\n`,
      )
    } finally {
      clearInterval(sampler)
    }
  }, 240_000)
})
