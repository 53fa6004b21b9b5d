// Table names: SQL's rules for parsing, one canonical spelling (agreeing with cdc.qualified_name in SQL), and an
// injective spelling for topics and collections. Anything that is not a name is refused, whatever it tries.
import { expect, test } from 'bun:test'
import { canonicalName, parseTableName, storageName, TableNameError } from '../../src/tables.ts'
import { ConfigError, loadConfig } from '../../src/config.ts'

test('SQL spellings parse to catalog names and back to one canonical name', () => {
  const cases: [string, { schema: string; name: string }, string][] = [
    ['orders', { schema: 'public', name: 'orders' }, 'orders'],
    ['Orders', { schema: 'public', name: 'orders' }, 'orders'],
    ['public.orders', { schema: 'public', name: 'orders' }, 'orders'],
    ['app.orders', { schema: 'app', name: 'orders' }, 'app.orders'],
    ['app."LineItems"', { schema: 'app', name: 'LineItems' }, 'app."LineItems"'],
    ['"My Schema"."a.b"', { schema: 'My Schema', name: 'a.b' }, '"My Schema"."a.b"'],
    ['app."say ""hi"""', { schema: 'app', name: 'say "hi"' }, 'app."say ""hi"""'],
    ['"order"', { schema: 'public', name: 'order' }, 'order'],
  ]
  for (const [input, parsed, canonical] of cases) {
    expect(parseTableName(input)).toEqual(parsed)
    expect(canonicalName(input)).toBe(canonical)
    expect(canonicalName(canonical)).toBe(canonical)
  }
})

test('injection attempts and non-names are refused', () => {
  for (const bad of ['app.widgets; drop table x', 'widgets"; drop table x; --', 'a.b.c', '', '.x', 'x.', '"unclosed', '""', 'a b', 'x--', `${'a'.repeat(64)}`, '"a\u0000b"']) {
    expect(() => parseTableName(bad)).toThrow(TableNameError)
  }
})

test('storage names: plain for public lower-case tables, distinct for every other name', () => {
  expect(storageName({ schema: 'public', name: 'customers' })).toBe('customers')
  expect(storageName({ schema: 'app', name: 'LineItems' })).toBe('app.LineItems')
  const names = [
    { schema: 'public', name: 'a.b' },
    { schema: 'a', name: 'b' },
    { schema: 'public', name: 'a-2Eb' },
    { schema: 'public', name: 'a b' },
    { schema: 'public', name: 'a-20b' },
    { schema: 'public', name: 'ä' },
  ]
  const spelled = names.map(storageName)
  expect(new Set(spelled).size).toBe(names.length)
  for (const s of spelled) expect(s).toMatch(/^[A-Za-z0-9._-]+$/)
})

test('config table names are checked and made canonical; a bad one is a config error', async () => {
  const file = `${process.env.TMPDIR ?? '/tmp'}/cdc-names-${Date.now()}.toml`
  await Bun.write(file, `[capture]\ntracked = ["App.Orders", 'app."LineItems"']\n[capture.tables.'app."LineItems"']\nmask = ["Secret"]\n`)
  const config = await loadConfig({ path: file, env: {} })
  expect(config.capture.tracked).toEqual(['app.orders', 'app."LineItems"'])
  expect(Object.keys(config.capture.tables)).toEqual(['app."LineItems"'])
  await Bun.write(file, `[capture]\ntracked = ["app.orders; drop table x"]\n`)
  const error = await loadConfig({ path: file, env: {} }).then(() => null, (e: Error) => e)
  expect(error).toBeInstanceOf(ConfigError)
  expect((error as ConfigError).problems.join('\n')).toContain('capture.tracked.0')
})
