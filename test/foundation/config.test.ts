import { describe, expect, test } from 'bun:test'
import { ConfigError, loadConfig, redactConfig } from '../../src/config.ts'

const tmp = async (text: string) => {
  const path = `/tmp/cdc-config-${Math.random().toString(36).slice(2)}.toml`
  await Bun.write(path, text)
  return path
}

const problems = async (text: string, env: Record<string, string> = {}) => {
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
})
