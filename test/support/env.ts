// Each test file gets its own PostgreSQL database, Kafka topic prefix, consumer group, transactional id and MongoDB
// database on the shared local stack, so files never see each other's data.
import { loadConfig, type Config } from '../../src/config.ts'
import { createRuntime, type Runtime } from '../../src/runtime.ts'
import { createLogger } from '../../src/log.ts'
import { connect } from '../../src/clients/postgres.ts'
import { stackConfigEnv } from './stack-env.ts'

export const ROOT = new URL('../..', import.meta.url).pathname

// Tests run with the shipped cdc.toml and the demo application on (its schema and rules), tuned for quick feedback;
// `createTestEnv(…, { demo: false })` gives a database with nothing but the team's own tables.
const tune = (c: Config) => {
  c.relay.lingerMs = 2
  c.relay.pollIntervalMs = 200
  return c
}
const base = tune(await loadConfig({ path: `${ROOT}cdc.toml`, env: { ...stackConfigEnv(), CDC_DEMO_ENABLED: 'true' } }))
const plain = tune(await loadConfig({ path: `${ROOT}cdc.toml`, env: { ...stackConfigEnv(), CDC_DEMO_ENABLED: 'false' } }))

export interface TestEnv {
  /** Short unique tag used in every name this env creates. */
  tag: string
  config: Config
  rt: Runtime
  /** Drops the database and closes clients. Kafka topics and Mongo databases are left for inspection. */
  cleanup(): Promise<void>
}

/** A fresh, empty database (no migrations applied) and unique names for everything else. */
export async function createTestEnv(overrides: (c: Config) => void = () => {}, options: { demo?: boolean } = {}): Promise<TestEnv> {
  const tag = `t${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`
  const admin = connect({ url: base.postgres.url, max: 1 })
  await admin.query(`create database ${tag}`)
  await admin.end()
  const config = structuredClone(options.demo === false ? plain : base)
  const url = new URL(base.postgres.url)
  url.pathname = `/${tag}`
  config.postgres.url = url.toString()
  config.kafka.topicTemplate = `${tag}.{table}`
  config.kafka.clientId = `cdc-${tag}`
  config.mongo.database = tag
  config.relay.transactionalId = `cdc-relay-${tag}`
  config.relay.slot = `slot_${tag}`
  config.relay.publication = `pub_${tag}`
  config.consume.groupId = `cdc-history-${tag}`
  overrides(config)
  const rt = createRuntime(config, createLogger({ test: tag }, quietWriter()))
  return {
    tag,
    config,
    rt,
    async cleanup() {
      await rt.close()
      const admin = connect({ url: base.postgres.url, max: 1 })
      await admin.query(`select pg_drop_replication_slot(slot_name) from pg_replication_slots where slot_name like $1 and not active`, [`%${tag}%`]).catch(() => {})
      await admin.query(`drop database if exists ${tag} with (force)`).catch(() => {})
      await admin.end()
    },
  }
}

/** Test logs go to a file unless CDC_TEST_LOG=1, so failures stay readable. */
function quietWriter() {
  if (process.env.CDC_TEST_LOG === '1') return (line: string) => process.stderr.write(line)
  return (_line: string) => {}
}

/** Poll `check` until it returns a truthy value or the time runs out. */
export async function eventually<T>(check: () => Promise<T | undefined | null | false>, timeoutMs = 20_000, stepMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs
  let lastError: unknown
  while (Date.now() < deadline) {
    try {
      const value = await check()
      if (value) return value
    } catch (error) {
      lastError = error
    }
    await Bun.sleep(stepMs)
  }
  throw new Error(`condition not met within ${timeoutMs} ms${lastError ? `: ${(lastError as Error).message}` : ''}`)
}

/**
 * `test/stack/stack.sh <args>`, awaited without blocking the event loop: roles running in this process must keep
 * reacting while a server stops (a PostgreSQL fast shutdown waits for the wal relay to confirm its stream).
 */
export async function stackCtl(...args: string[]): Promise<void> {
  const proc = Bun.spawn(['bash', `${ROOT}test/stack/stack.sh`, ...args], { stdout: 'ignore', stderr: 'pipe' })
  const [code, err] = await Promise.all([proc.exited, new Response(proc.stderr).text()])
  if (code !== 0) throw new Error(`stack.sh ${args.join(' ')} failed (${code}): ${err.slice(-500)}`)
}
