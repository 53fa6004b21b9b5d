import { describe, expect, test } from 'bun:test'
import { ConfigError, loadConfig, redactConfig, unknownEnv } from '../../src/config.ts'

const tmp = async (text: string | Uint8Array) => {
  const path = `/tmp/cdc-config-${Math.random().toString(36).slice(2)}.toml`
  await Bun.write(path, text)
  return path
}

const problems = async (text: string | Uint8Array, env: Record<string, string> = {}) => {
  try {
    await loadConfig({ path: await tmp(text), env })
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError)
    return (error as ConfigError).problems
  }
  throw new Error('expected a ConfigError')
}

describe('config', () => {
  test('defaults point at the local stack when no file exists', async () => {
    const c = await loadConfig({ env: { CDC_CONFIG: undefined }, path: undefined })
    expect(c.postgres.url).toBe('postgres://cdc:cdc@127.0.0.1:55432/cdc')
    expect(c.kafka.brokers).toEqual(['127.0.0.1:19092'])
    expect(c.mongo.url).toBe('mongodb://127.0.0.1:27017')
    expect(c.http.host).toBe('127.0.0.1')
    expect(c.http.port).toBe(8080)
    expect(c.relay.mode).toBe('poll')
  })

  test('values come from the file', async () => {
    const c = await loadConfig({ path: await tmp('[http]\nport = 9090\n[kafka]\nbrokers = ["k1:9092", "k2:9092"]\n'), env: {} })
    expect(c.http.port).toBe(9090)
    expect(c.kafka.brokers).toEqual(['k1:9092', 'k2:9092'])
  })

  test('environment variables override the file, converted to the key type', async () => {
    const path = await tmp('[http]\nport = 9090\n')
    const c = await loadConfig({
      path,
      env: {
        CDC_HTTP_PORT: '9191',
        CDC_KAFKA_BROKERS: 'a:1,b:2',
        CDC_POSTGRES_URL: 'postgres://u:secret@db:5432/x',
        CDC_MONGO_URL: 'mongodb://m:27017',
        CDC_HTTP_HOST: '0.0.0.0',
        CDC_HTTP_ALLOW_OPEN_BIND: 'true',
        CDC_POSTGRES_MAX_CONNECTIONS: '4',
      },
    })
    expect(c.http.port).toBe(9191)
    expect(c.kafka.brokers).toEqual(['a:1', 'b:2'])
    expect(c.postgres.url).toBe('postgres://u:secret@db:5432/x')
    expect(c.http.host).toBe('0.0.0.0')
    expect(c.http.allowOpenBind).toBe(true)
    expect(c.postgres.maxConnections).toBe(4)
  })

  test('CDC_CONFIG names the file', async () => {
    const c = await loadConfig({ env: { CDC_CONFIG: await tmp('[http]\nport = 7070\n') } })
    expect(c.http.port).toBe(7070)
  })

  test('a wrong type names the key, the expected type and the value', async () => {
    const p = await problems('[http]\nport = "eighty"\n')
    expect(p).toEqual(['http.port: expected number, got "eighty"'])
  })

  test('an out-of-range number, a bad enum, a bad URL and an unknown key each get their line', async () => {
    const p = await problems('[http]\nport = 70000\nprot = 1\n[relay]\nmode = "fast"\n[mongo]\nurl = "http://x"\n')
    expect(p).toContain('http.port: expected <=65535, got 70000')
    expect(p).toContain('http.prot: unknown key; did you mean port?')
    expect(p).toContain('relay.mode: expected ("poll" | "wal"), got "fast"')
    expect(p.some((l) => l.startsWith('mongo.url:'))).toBe(true)
  })

  test('capture: bookkeeping columns and rule reasons are read; a reason on an update rule names its key', async () => {
    const toml = '[capture.tables.orders]\nbookkeeping = ["updated_at"]\n[[capture.rules]]\ntable = "orders"\nop = "d"\ntype = "OrderCancelled"\nreason = "HARD_DELETE"\n'
    const c = await loadConfig({ env: { CDC_CONFIG: await tmp(toml) } })
    expect(c.capture.tables.orders).toEqual({ exclude: [], mask: [], incidental: [], bookkeeping: ['updated_at'] })
    expect(c.capture.rules).toEqual([{ table: 'orders', op: 'd', type: 'OrderCancelled', reason: 'HARD_DELETE' }])
    const p = await problems('[[capture.rules]]\ntable = "orders"\nop = "u"\ncolumns = ["status"]\ntype = "OrderShipped"\nreason = "x"\n')
    expect(p).toEqual(['capture.rules.0.reason: expected no reason on an update rule (op c or d only), got "x"'])
  })

  test('invalid TOML and a missing explicit file are config errors', async () => {
    expect(await problems('[http\nport=')).toHaveLength(1)
    await expect(loadConfig({ path: '/nonexistent/cdc.toml', env: {} })).rejects.toBeInstanceOf(ConfigError)
  })

  test('bad environment values name the variable', async () => {
    const p = await problems('', { CDC_HTTP_PORT: 'abc', CDC_HTTP_ALLOW_OPEN_BIND: 'yes' })
    expect(p).toContain('CDC_HTTP_PORT: expected a number, got "abc"')
    expect(p).toContain('CDC_HTTP_ALLOW_OPEN_BIND: expected true or false, got "yes"')
  })

  test('secrets are never echoed back', async () => {
    const p = await problems('[postgres]\nurl = "not a url with password hunter2"\n')
    expect(p.join('\n')).not.toContain('hunter2')
    const c = await loadConfig({ path: await tmp(''), env: { CDC_POSTGRES_URL: 'postgres://u:hunter2@h/db' } })
    expect(JSON.stringify(redactConfig(c))).not.toContain('hunter2')
  })

  const digest = 'a'.repeat(64)
  const tokens = `[[http.tokens]]\nname = "ops"\nsha256 = "${digest}"\nrole = "admin"\n`

  test('a non-ASCII character outside a string refuses the whole file (Bun.TOML.parse dropped the tokens after it)', async () => {
    for (const ch of ['\u00a0', '\u200b', '\u3000', '\u00e9', '\u2028']) {
      const p = await problems(`[http]\nport = 8081\n${ch}\n${tokens}`)
      expect(p).toEqual(['not valid TOML: line 3, column 1: illegal character in key'])
    }
    // Inside strings and comments non-ASCII is TOML: read exactly.
    const c = await loadConfig({ path: await tmp(`# café\n[kafka]\nclientId = "cdc-café"\n${tokens}`), env: {} })
    expect([c.kafka.clientId, c.http.tokens.length]).toEqual(['cdc-café', 1])
  })

  test('BOMs, UTF-16, NUL bytes and invalid UTF-8 are refused, naming the encoding problem', async () => {
    const text = `[http]\nport = 8081\n${tokens}`
    expect(await problems(`\ufeff${text}`)).toEqual(['the file starts with a byte-order mark; save it as UTF-8 without one'])
    expect(await problems(new Uint8Array(Buffer.from(`\ufeff${text}`, 'utf16le')))).toEqual(['the file is UTF-16 (it starts with a byte-order mark); save it as UTF-8'])
    expect(await problems(new Uint8Array(Buffer.from(`\ufeff${text}`, 'utf16le').swap16()))).toEqual(['the file is UTF-16 (it starts with a byte-order mark); save it as UTF-8'])
    expect((await problems(new Uint8Array(Buffer.from(text, 'utf16le'))))[0]).toStartWith('the file contains a NUL byte (at byte 1)')
    expect(await problems(new Uint8Array(Buffer.from(`# caf\u00e9\n${text}`, 'latin1')))).toEqual(['the file is not valid UTF-8 (line 1); save it as UTF-8'])
    expect((await problems(new Uint8Array([...Buffer.from('a = "'), 0xed, 0xa0, 0x80, ...Buffer.from('"\n')])))[0]).toStartWith('the file is not valid UTF-8')
  })

  test('a TOML error gives line, column and reason, never the offending line (it may hold a password)', async () => {
    const p = await problems('[postgres]\nurl = "postgres://u:hunter2@db/x" trailing\n')
    expect(p).toEqual(['not valid TOML: line 2, column 35: each key-value declaration must be followed by an end-of-line'])
  })

  test('config errors never print a secret, whatever the type of the value', async () => {
    const url = 'postgres://u:hunter2@db/x'
    const files = [
      `[postgres]\nurl = ["${url}"]\n`,
      `[postgres]\nurl = { value = "${url}" }\n`,
      `[postgres]\nurl = [[{ a = "${url}" }]]\n`,
      `[mongo]\nurl = ["mongodb://u:hunter2@m"]\n`,
      `postgres = "${url}"\n`,
      `postgres = ["${url}"]\n`,
      `[kafka]\nbrokers = [{ a = "${url}" }]\n`,
      `[kafka]\nclientId = ["${url}"]\n`,
      `[kafka]\nclientId = { x = "hunter2" }\n`,
      `[kafka]\ntopics = { A = "${url}" }\n`,
      `[http]\ntokens = "hunter2"\n`,
      `[http]\ntokens = ["hunter2"]\n`,
      `[[http.tokens]]\nname = "ops"\nsha256 = "hunter2"\nrole = "admin"\n`,
      `[[http.tokens]]\nname = "ops"\nsha256 = ["hunter2"]\nrole = "admin"\n`,
      `[http]\nport = "${url}"\n`,
      `[http]\nhost = ["${url}"]\n`,
      `[log]\nlevel = "${url}"\n`,
    ]
    for (const file of files) {
      const p = await problems(file)
      expect([file, p.join('\n')]).toEqual([file, expect.not.stringContaining('hunter2')])
    }
    const envs: Record<string, string>[] = [
      { CDC_HTTP_TOKENS: '[{"name":"x","sha256":"hunter2"' },
      { CDC_HTTP_TOKENS: 'ops:hunter2:admin' },
      { CDC_HTTP_TOKENS: 'hunter2' },
      { CDC_POSTGRES_URL: 'hunter2' },
      { CDC_MONGO_URL: 'http://u:hunter2@x' },
      { CDC_KAFKA_TOPICS: '{"a": "hunter2 not json' },
      { CDC_HTTP_PORT: url },
    ]
    for (const env of envs) {
      const p = await problems('', env)
      expect([env, p.join('\n')]).toEqual([env, expect.not.stringContaining('hunter2')])
    }
  })

  test('tokens can come from CDC_HTTP_TOKENS, as a JSON list or as name:sha256:role entries', async () => {
    const b = 'b'.repeat(64)
    const short = await loadConfig({ path: await tmp(''), env: { CDC_HTTP_TOKENS: `ops:${digest}:admin, viewer:${b}:read` } })
    expect(short.http.tokens).toEqual([
      { name: 'ops', sha256: digest, role: 'admin' },
      { name: 'viewer', sha256: b, role: 'read' },
    ])
    const json = await loadConfig({ path: await tmp(tokens), env: { CDC_HTTP_TOKENS: JSON.stringify([{ name: 'ci', sha256: b, role: 'write' }]) } })
    expect(json.http.tokens).toEqual([{ name: 'ci', sha256: b, role: 'write' }])
    expect(await problems('', { CDC_HTTP_TOKENS: `ops:${digest}:root` })).toEqual(['http.tokens.0.role: expected ("read" | "write" | "admin"), got a string (value hidden)'])
    expect(await problems('', { CDC_HTTP_TOKENS: `ops:${digest}` })).toEqual(['http.tokens.0.role: required'])
    expect(await problems('', { CDC_HTTP_TOKENS: '[{"name":' })).toEqual(['CDC_HTTP_TOKENS: expected a JSON array, got <redacted>'])
    expect(await problems('', { CDC_CAPTURE_RULES: 'x' })).toEqual(['CDC_CAPTURE_RULES: expected a JSON array of tables, got "x"'])
  })

  test('unknown CDC_* variables are reported with the closest known name; the tooling\'s own are not', () => {
    const env = { CDC_KAFKA_PARTITONS: '3', CDC_HTTP_PROT: '1', CDC_FROBNICATE: 'x', CDC_HTTP_PORT: '1', CDC_HTTP_TOKENS: '', CDC_CONFIG: 'x', CDC_STACK_PG_PORT: '1', CDC_TEST_LOG: '1', PATH: '/bin' }
    expect(unknownEnv(env)).toEqual([
      { name: 'CDC_FROBNICATE' },
      { name: 'CDC_HTTP_PROT', didYouMean: 'CDC_HTTP_PORT' },
      { name: 'CDC_KAFKA_PARTITONS', didYouMean: 'CDC_KAFKA_PARTITIONS' },
    ])
  })

  test('command-line overrides are checked like their key and named by their flag', async () => {
    const c = await loadConfig({ path: await tmp('[http]\nport = 9090\n'), env: { CDC_HTTP_PORT: '9191' }, args: [{ flag: '--port', key: 'http.port', text: '9292' }] })
    expect(c.http.port).toBe(9292)
    expect(await loadConfig({ path: await tmp(''), env: {}, args: [{ flag: '--port', key: 'http.port', text: 'abc' }] }).catch((e: ConfigError) => e.problems)).toEqual(['--port: expected a number, got "abc"'])
    expect(await loadConfig({ path: await tmp(''), env: {}, args: [{ flag: '--port', key: 'http.port', text: '0' }] }).catch((e: ConfigError) => e.problems)).toEqual(['--port: expected >=1, got 0'])
  })

  test('redactConfig hides every secret for `cdc config print`', async () => {
    const c = await loadConfig({ path: await tmp(tokens), env: { CDC_POSTGRES_URL: 'postgres://u:hunter2@h/db?password=hunter2', CDC_MONGO_URL: 'mongodb://m:hunter2@h' } })
    const shown = JSON.stringify(redactConfig(c))
    expect(shown).not.toContain('hunter2')
    expect(shown).not.toContain(digest)
    expect(shown).toContain('postgres://u:***@h/db')
  })
})
