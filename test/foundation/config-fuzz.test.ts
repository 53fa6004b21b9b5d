// A seeded, reproducible fuzz of cdc.toml: truncations at every byte of the shipped file, non-ASCII characters
// inserted at random positions, random byte edits, random bytes, other encodings and BOMs. Every case must either be
// refused (loadConfig throws a ConfigError; the CLI exits 2) or give exactly the config that a reference parse of the
// same bytes gives — never a partial one. The reference is Python's tomllib (an independent, strict TOML 1.0 parser),
// run once over all cases.
import { afterAll, expect, test } from 'bun:test'
import { mkdtempSync, rmSync } from 'node:fs'
import * as v from 'valibot'
import { ConfigError, ConfigSchema, loadConfig } from '../../src/config.ts'
import { ROOT } from '../support/env.ts'

const SEED = Number(process.env.CDC_TEST_FUZZ_SEED ?? 20261130)
const dir = mkdtempSync('/tmp/cdc-config-fuzz-')
afterAll(() => rmSync(dir, { recursive: true, force: true }))

/** mulberry32: small, seeded, good enough to spread cases. */
function rng(seed: number) {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

interface Case {
  kind: string
  bytes: Uint8Array
}

const shipped = new Uint8Array(await Bun.file(`${ROOT}cdc.toml`).arrayBuffer())
const NON_ASCII = ['\u00a0', '\u200b', '\ufeff', '\u00e9', '\u2028', '\u0085', '\u3000', '\u{1f600}', '\u00ad', '\u2003']

function cases(): Case[] {
  const random = rng(SEED)
  const int = (n: number) => Math.floor(random() * n)
  const out: Case[] = []
  for (let i = 0; i <= shipped.length; i++) out.push({ kind: 'truncation', bytes: shipped.subarray(0, i) })
  const text = new TextDecoder().decode(shipped)
  for (let i = 0; i < 400; i++) {
    const at = int(text.length + 1)
    const ch = NON_ASCII[int(NON_ASCII.length)]!
    out.push({ kind: 'non-ascii inserted', bytes: new TextEncoder().encode(text.slice(0, at) + ch + text.slice(at)) })
  }
  for (let i = 0; i < 300; i++) {
    const bytes = shipped.slice()
    for (let n = 1 + int(3); n > 0; n--) bytes[int(bytes.length)] = int(256)
    out.push({ kind: 'byte edits', bytes })
  }
  for (let i = 0; i < 200; i++) {
    const bytes = new Uint8Array(int(300))
    for (let j = 0; j < bytes.length; j++) bytes[j] = random() < 0.7 ? 0x20 + int(95) : int(256)
    out.push({ kind: 'random bytes', bytes })
  }
  const utf16be = (s: string) => new Uint8Array(Buffer.from(s, 'utf16le').swap16())
  const bom8 = new Uint8Array([0xef, 0xbb, 0xbf])
  const concat = (...parts: Uint8Array[]) => new Uint8Array(Buffer.concat(parts))
  const latin1 = text.replace('# cdc configuration', '# cdc configuración')
  out.push(
    { kind: 'encoding', bytes: new Uint8Array(Buffer.from(text, 'utf16le')) },
    { kind: 'encoding', bytes: new Uint8Array(Buffer.from(`\ufeff${text}`, 'utf16le')) },
    { kind: 'encoding', bytes: utf16be(text) },
    { kind: 'encoding', bytes: utf16be(`\ufeff${text}`) },
    { kind: 'encoding', bytes: new Uint8Array(Buffer.from(latin1, 'latin1')) },
    { kind: 'encoding', bytes: concat(bom8, shipped) },
    { kind: 'encoding', bytes: concat(new Uint8Array([0xff, 0xfe, 0, 0]), new Uint8Array(Buffer.from(text, 'utf16le'))) },
    { kind: 'encoding', bytes: concat(shipped, bom8) },
    { kind: 'encoding', bytes: new TextEncoder().encode(latin1) },
    { kind: 'encoding', bytes: new TextEncoder().encode(text.replaceAll('\n', '\r\n')) },
    { kind: 'encoding', bytes: new TextEncoder().encode(text.replaceAll('\n', '\r')) },
  )
  return out
}

/** tomllib's reading of each file: a document (with tags for what JSON cannot carry), or null when it refuses it. */
function reference(paths: string[]): (unknown | null)[] {
  const script = `
import json, sys, tomllib, datetime, math
def tag(x):
    if isinstance(x, dict): return {k: tag(v) for k, v in x.items()}
    if isinstance(x, list): return [tag(v) for v in x]
    if isinstance(x, bool): return x
    if isinstance(x, int): return x if abs(x) <= 2**53 - 1 else {"$bigint": str(x)}
    if isinstance(x, float) and (math.isnan(x) or math.isinf(x)): return {"$float": repr(x)}
    if isinstance(x, (datetime.date, datetime.time)): return {"$date": x.isoformat()}
    return x
for path in sys.stdin.read().split("\\n"):
    try:
        with open(path, "rb") as f: doc = tomllib.load(f)
        print(json.dumps({"doc": tag(doc)}))
    except Exception:
        print(json.dumps({"doc": None}))
`
  const run = Bun.spawnSync(['python3', '-c', script], { stdin: new TextEncoder().encode(paths.join('\n')), stdout: 'pipe', stderr: 'pipe' })
  if (run.exitCode !== 0) throw new Error(`the reference parser failed: ${run.stderr.toString()}`)
  return run.stdout
    .toString()
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line).doc)
}

/** What exactly-as-written gives: the schema applied to the reference document, or null when it must be refused. */
function expected(doc: unknown): unknown | null {
  if (doc === null) return null
  let unrepresentable = false
  const restored = JSON.parse(JSON.stringify(doc), (_k, value) => {
    if (value && typeof value === 'object' && '$bigint' in value) unrepresentable = true
    if (value && typeof value === 'object' && '$float' in value) return value.$float === 'nan' ? Number.NaN : value.$float.startsWith('-') ? -Infinity : Infinity
    if (value && typeof value === 'object' && '$date' in value) return new Date(0)
    return value
  })
  if (unrepresentable) return null
  const result = v.safeParse(ConfigSchema, restored)
  return result.success ? result.output : null
}

test(`cdc.toml fuzz (seed ${SEED}): every case is refused or read exactly; none partial`, async () => {
  const all = cases()
  const paths = all.map((_, i) => `${dir}/case-${i}.toml`)
  await Promise.all(all.map((c, i) => Bun.write(paths[i]!, c.bytes)))
  const refs = reference(paths)
  expect(refs).toHaveLength(all.length)
  const tally: Record<string, { tried: number; refused: number; exact: number; failOpen: number; wrongRefusal: number }> = {}
  const failures: string[] = []
  for (const [i, c] of all.entries()) {
    const t = (tally[c.kind] ??= { tried: 0, refused: 0, exact: 0, failOpen: 0, wrongRefusal: 0 })
    t.tried++
    const want = expected(refs[i])
    let got: unknown
    try {
      got = await loadConfig({ path: paths[i], env: {} })
    } catch (error) {
      if (!(error instanceof ConfigError)) {
        failures.push(`case ${i} (${c.kind}): threw ${(error as Error).name}: ${(error as Error).message}`)
        continue
      }
      t.refused++
      // The shipped file's postgres URL carries a password: no refusal may print it.
      if (error.message.includes('cdc:cdc@')) failures.push(`case ${i} (${c.kind}): the error shows the postgres password`)
      // Not unsafe, but a file the reference reads exactly must load too.
      if (want !== null) t.wrongRefusal++
      continue
    }
    if (want !== null && JSON.stringify(got) === JSON.stringify(want)) t.exact++
    else {
      t.failOpen++
      failures.push(`case ${i} (${c.kind}): loaded a config the reference ${want === null ? 'refuses' : 'reads differently'}`)
    }
  }
  console.log(JSON.stringify({ seed: SEED, cases: all.length, tally }))
  expect(failures).toEqual([])
  for (const t of Object.values(tally)) expect(t.wrongRefusal).toBe(0)
  // The unmodified file still loads: truncation at the full length is the shipped file itself.
  expect(tally.truncation!.exact).toBeGreaterThan(0)
}, 120_000)

test('fuzz cases through the CLI exit 2 (or 0 for the file as shipped)', async () => {
  const text = new TextDecoder().decode(shipped)
  const tokens = '[[http.tokens]]\nname = "ops"\nsha256 = "' + 'a'.repeat(64) + '"\nrole = "admin"\n'
  const files: [string, Uint8Array | string, number][] = [
    ['shipped', shipped, 0],
    ['no-break space before the tokens', `${text}\n\u00a0\n${tokens}`, 2],
    ['UTF-16 with BOM', new Uint8Array(Buffer.from(`\ufeff${text}`, 'utf16le')), 2],
    ['UTF-8 BOM', `\ufeff${text}`, 2],
    ['truncated inside a table header', text.slice(0, text.indexOf('[kafka]') + 4), 2],
  ]
  for (const [name, bytes, code] of files) {
    const path = `${dir}/cli-${name.replaceAll(' ', '-')}.toml`
    await Bun.write(path, bytes)
    const run = Bun.spawnSync(['bun', `${ROOT}src/cli.ts`, '--config', path, 'config', 'print'], { cwd: '/tmp', env: { PATH: process.env.PATH ?? '' }, stdout: 'pipe', stderr: 'pipe' })
    expect([name, run.exitCode]).toEqual([name, code])
    if (code === 2) expect(run.stdout.toString()).toBe('')
  }
}, 120_000)
