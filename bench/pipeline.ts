// A whole pipeline on the local stack for the end-to-end benchmark and the chaos run: its own database, topics,
// consumer group and MongoDB database, migrated, with the roles as child processes of the real CLI.
import { mkdirSync, openSync, readFileSync } from 'node:fs'
import { connect } from '../src/clients/postgres.ts'
import { loadConfig, type Config } from '../src/config.ts'
import { stackConfigEnv } from '../test/support/stack-env.ts'
import type { Proc } from './proc.ts'

export type { Proc }

export const ROOT = new URL('..', import.meta.url).pathname

export function stack(...args: string[]) {
  const r = Bun.spawnSync(['bash', `${ROOT}test/stack/stack.sh`, ...args], { stdout: 'pipe', stderr: 'pipe' })
  if (r.exitCode !== 0) throw new Error(`stack ${args.join(' ')} failed: ${r.stderr.toString().slice(-500)}`)
}

export type RoleName = 'relay' | 'consume' | 'serve' | 'all'

export interface Pipeline {
  tag: string
  config: Config
  env: Record<string, string>
  api: string
  logDir: string
  start(role: RoleName, args?: string[]): void
  /** Environment overrides for one role, applied from its next start on (e.g. its server reached through a proxy). */
  setRoleEnv(role: RoleName, env: Record<string, string>): void
  /** The process id of a started role. */
  pid(role: RoleName): number | undefined
  kill9(role: RoleName): Promise<void>
  stopAll(): Promise<void>
  dropDatabase(): Promise<void>
}

export async function createPipeline(prefix: string, overrides: Record<string, string> = {}): Promise<Pipeline> {
  stack('up')
  const base = await loadConfig({ path: `${ROOT}cdc.toml`, env: stackConfigEnv() })
  const tag = `${prefix}_${Date.now().toString(36)}`
  const dbUrl = new URL(base.postgres.url)
  dbUrl.pathname = `/${tag}`
  const port = 18000 + Math.floor(Math.random() * 1000)
  const env: Record<string, string> = {
    ...(process.env as Record<string, string>),
    ...stackConfigEnv(),
    CDC_CONFIG: `${ROOT}cdc.toml`,
    CDC_POSTGRES_URL: dbUrl.toString(),
    CDC_KAFKA_TOPIC_TEMPLATE: `${tag}.{table}`,
    CDC_KAFKA_CLIENT_ID: tag,
    CDC_MONGO_DATABASE: tag,
    CDC_CONSUME_GROUP_ID: `${tag}-history`,
    CDC_RELAY_TRANSACTIONAL_ID: `${tag}-relay`,
    CDC_RELAY_SLOT: `${tag}_slot`,
    CDC_RELAY_PUBLICATION: `${tag}_pub`,
    CDC_HTTP_PORT: String(port),
    CDC_LOG_LEVEL: 'info',
    // The bench and chaos runs drive the demo application.
    CDC_DEMO_ENABLED: 'true',
    ...overrides,
  }
  const config = await loadConfig({ path: `${ROOT}cdc.toml`, env })
  // Next to the stack the run uses (CDC_STACK_DIR, as in test/stack/stack.sh).
  const logDir = `${process.env.CDC_STACK_DIR ?? `${ROOT}.stack`}/runs/${tag}`
  mkdirSync(logDir, { recursive: true })
  const admin = connect({ url: base.postgres.url, max: 1 })
  await admin.query(`create database ${tag}`)
  await admin.end()
  const cli = (args: string[]) => ['bun', 'run', `${ROOT}src/cli.ts`, ...args]
  const migrate = Bun.spawnSync(cli(['migrate']), { env, stdout: 'pipe', stderr: 'pipe' })
  if (migrate.exitCode !== 0) throw new Error(`migrate failed: ${migrate.stderr.toString().slice(-1000)}`)

  const procs = new Map<RoleName, Bun.Subprocess>()
  const roleEnv = new Map<RoleName, Record<string, string>>()
  return {
    tag,
    config,
    env,
    api: `http://127.0.0.1:${port}`,
    logDir,
    start(role, args = []) {
      const out = openSync(`${logDir}/${role}.log`, 'a')
      procs.set(role, Bun.spawn(cli([role, ...args]), { env: { ...env, ...roleEnv.get(role) }, stdout: out, stderr: out }))
    },
    setRoleEnv: (role, overrides) => void roleEnv.set(role, overrides),
    pid: (role) => procs.get(role)?.pid,
    async kill9(role) {
      const p = procs.get(role)
      p?.kill(9)
      await p?.exited
    },
    async stopAll() {
      for (const p of [...procs.values()].reverse()) {
        p.kill('SIGTERM')
        await Promise.race([p.exited, Bun.sleep(20_000)])
        p.kill(9)
      }
    },
    async dropDatabase() {
      const admin = connect({ url: base.postgres.url, max: 1 })
      await admin.query(`select pg_drop_replication_slot(slot_name) from pg_replication_slots where slot_name = $1 and not active`, [`${tag}_slot`]).catch(() => {})
      await admin.query(`drop database if exists ${tag} with (force)`).catch(() => {})
      await admin.end()
    },
  }
}

export async function waitFor(check: () => Promise<boolean>, timeoutMs: number, what: string, stepMs = 250) {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return
    await Bun.sleep(stepMs)
  }
  throw new Error(`timed out waiting for ${what}`)
}

/**
 * The settings that point a `cdc` process at a test environment's own database, MongoDB database, topics, slot and
 * names (test/support/env.ts), for a bench that spawns one role as its own process.
 */
export function testEnvSettings(config: Config): Record<string, string> {
  return {
    ...stackConfigEnv(),
    CDC_CONFIG: `${ROOT}cdc.toml`,
    CDC_POSTGRES_URL: config.postgres.url,
    CDC_MONGO_DATABASE: config.mongo.database,
    CDC_KAFKA_TOPIC_TEMPLATE: config.kafka.topicTemplate,
    CDC_KAFKA_CLIENT_ID: config.kafka.clientId,
    CDC_RELAY_TRANSACTIONAL_ID: config.relay.transactionalId,
    CDC_RELAY_SLOT: config.relay.slot,
    CDC_RELAY_PUBLICATION: config.relay.publication,
  }
}

/** The pipeline's `role` process and the stack's servers. */
export function pipelineProcesses(pipeline: Pipeline, role: RoleName): Proc[] {
  return [{ name: `cdc ${role}`, pid: () => pipeline.pid(role) }, ...serverProcesses()]
}

/** The stack's servers (their pid files in the stack directory). */
export function serverProcesses(): Proc[] {
  const dir = process.env.CDC_STACK_DIR ?? `${ROOT}.stack`
  return [
    { name: 'postgres', pid: () => readPid(`${dir}/postgres/data/postmaster.pid`), children: true },
    { name: 'kafka', pid: () => readPid(`${dir}/kafka/kafka.pid`) },
    { name: 'ferretdb', pid: () => readPid(`${dir}/mongo/ferretdb.pid`) },
  ]
}

function readPid(path: string): number | undefined {
  try {
    const pid = Number(readFileSync(path, 'utf8').split('\n')[0]!.trim())
    return pid > 0 ? pid : undefined
  } catch {
    return undefined
  }
}
