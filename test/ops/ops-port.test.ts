// Roles run alone (`cdc relay`, `cdc consume`) answer /healthz, /readyz and /metrics on their own port; the metrics
// are well-formed (promtool check metrics) and the example alert rules are valid (promtool check rules).
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { appendFileSync } from 'node:fs'
import { ROOT, createTestEnv, eventually, type TestEnv } from '../support/env.ts'
import { freePort, get, sample } from '../support/ops.ts'
import { cleanupEnv, prepareDb } from '../relay/support.ts'

let env: TestEnv
const procs: ReturnType<typeof Bun.spawn>[] = []
let promtool: string | undefined

beforeAll(async () => {
  env = await createTestEnv()
  await prepareDb(env)
  const found = Bun.spawnSync(['bash', `${ROOT}scripts/promtool.sh`], { stderr: 'pipe' })
  if (found.exitCode === 0) promtool = found.stdout.toString().trim()
  else console.warn(`promtool unavailable, its checks are skipped: ${found.stderr.toString().trim()}`)
})

afterAll(async () => {
  for (const p of procs) {
    p.kill('SIGTERM')
    await p.exited
  }
  if (env) await cleanupEnv(env)
}, 30_000)

function spawnRole(args: string[], name: string, extra: Record<string, string> = {}) {
  const logPath = `/tmp/cdc-ops-${env.tag}-${name}.log`
  appendFileSync(logPath, '')
  const c = env.config
  const proc = Bun.spawn([process.execPath, 'run', 'src/cli.ts', ...args], {
    cwd: ROOT,
    env: {
      ...process.env,
      CDC_POSTGRES_URL: c.postgres.url,
      CDC_KAFKA_BROKERS: c.kafka.brokers.join(','),
      CDC_KAFKA_TOPIC_TEMPLATE: c.kafka.topicTemplate,
      CDC_RELAY_TRANSACTIONAL_ID: c.relay.transactionalId,
      CDC_RELAY_SLOT: c.relay.slot,
      CDC_RELAY_PUBLICATION: c.relay.publication,
      CDC_MONGO_URL: c.mongo.url,
      CDC_MONGO_DATABASE: c.mongo.database,
      CDC_CONSUME_GROUP_ID: c.consume.groupId,
      CDC_LOG_LEVEL: 'info',
      ...extra,
    },
    stdout: 'pipe',
    stderr: Bun.file(logPath),
  })
  procs.push(proc)
  return { proc, log: () => Bun.file(logPath).text() }
}

function promtoolCheck(args: string[], stdin?: string) {
  const run = Bun.spawnSync([promtool!, ...args], { stdin: stdin === undefined ? undefined : new TextEncoder().encode(stdin), stderr: 'pipe', stdout: 'pipe' })
  return { code: run.exitCode, out: run.stdout.toString() + run.stderr.toString() }
}

describe('ops port of roles run alone', () => {
  test('cdc relay (wal): health, readiness with leadership, build/process/relay/slot metrics; probes logged at debug', async () => {
    const port = freePort()
    const relay = spawnRole(['relay', '--mode', 'wal'], 'relay', { CDC_OPS_PORT: String(port) })
    expect(await eventually(async () => (await get(port, '/healthz')).status === 200, 30_000)).toBe(true)
    const ready = await eventually(async () => {
      const r = await get(port, '/readyz')
      const body = JSON.parse(r.text)
      return r.status === 200 && body.relayLeader && body
    }, 30_000, 250)
    expect(ready).toMatchObject({ status: 'ready', roles: ['relay'], checks: { postgres: { ok: true }, kafka: { ok: true } } })
    expect(ready.checks.mongo).toBeUndefined()
    const metrics = await eventually(async () => {
      const text = (await get(port, '/metrics')).text
      return sample(text, 'cdc_relay_slot_lag_bytes', { slot: env.config.relay.slot }) !== undefined && text
    }, 30_000, 500)
    expect(sample(metrics, 'cdc_build_info')).toBe(1)
    expect(metrics).toMatch(/cdc_build_info\{built="[^"]+",commit="[^"]+",version="\d+\.\d+\.\d+"\} 1/)
    expect(sample(metrics, 'process_resident_memory_bytes')).toBeGreaterThan(1_000_000)
    expect(sample(metrics, 'process_cpu_seconds_total')).toBeGreaterThan(0)
    expect(sample(metrics, 'cdc_relay_leader')).toBe(1)
    expect(sample(metrics, 'cdc_relay_slot_active', { slot: env.config.relay.slot })).toBe(1)
    expect(sample(metrics, 'cdc_relay_backlog_events', { mode: 'wal' })).toBeGreaterThanOrEqual(0)
    expect(sample(metrics, 'cdc_relay_lag_seconds', { mode: 'wal' })).toBeGreaterThanOrEqual(0)
    if (promtool) {
      const check = promtoolCheck(['check', 'metrics'], metrics)
      expect(check.out).not.toContain('error')
      expect(check.code).toBe(0)
    }
    const lines = (await relay.log()).split('\n').filter(Boolean).map((l) => JSON.parse(l))
    const probes = lines.filter((l) => l.msg === 'http request')
    expect(probes).toEqual([]) // at info level nothing: probes and scrapes log at debug
    expect(lines.find((l) => l.msg === 'ops endpoint serving')).toMatchObject({ role: 'ops', roles: ['relay'] })

    // SIGHUP: a clear log line, and the role keeps running.
    relay.proc.kill('SIGHUP')
    await eventually(async () => (await relay.log()).includes('"signal":"SIGHUP"'), 10_000)
    expect((await get(port, '/healthz')).status).toBe(200)
    expect(relay.proc.exitCode).toBeNull()
  }, 90_000)

  test('cdc consume: readiness needs Kafka and MongoDB; consumer lag and DLQ depth are exposed', async () => {
    const port = freePort()
    const consume = spawnRole(['consume'], 'consume', { CDC_OPS_PORT: String(port) })
    const ready = await eventually(async () => {
      const r = await get(port, '/readyz')
      return r.status === 200 && JSON.parse(r.text)
    }, 45_000, 250)
    expect(ready).toMatchObject({ status: 'ready', roles: ['consume'], checks: { kafka: { ok: true }, mongo: { ok: true } } })
    expect(ready.relayLeader).toBeUndefined()
    const metrics = await eventually(async () => {
      const text = (await get(port, '/metrics')).text
      return text.includes('cdc_consume_dlq_depth{') && text.includes('cdc_consume_lag{') && text
    }, 45_000, 500)
    expect(sample(metrics, 'cdc_consume_lag', { topic: `${env.tag}.customers` })).toBe(0)
    expect(sample(metrics, 'cdc_consume_dlq_depth', { topic: `${env.tag}.customers.dlq` })).toBe(0)
    expect((await get(port, '/nope')).status).toBe(404)
    // Nothing but JSON lines (no kafkajs TimeoutNegativeWarning stack trace under Bun).
    const lines = (await consume.log()).split('\n').filter(Boolean)
    expect(lines.filter((l) => !l.startsWith('{') || !JSON.parse(l).msg)).toEqual([])
  }, 90_000)

  test('an explicit ops.port that is taken stops the role with a clear error', async () => {
    const holder = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: () => new Response() })
    try {
      const role = spawnRole(['consume'], 'taken', { CDC_OPS_PORT: String(holder.port) })
      expect(await role.proc.exited).toBe(1)
      expect(await role.log()).toContain(`ops.port ${holder.port}`)
    } finally {
      holder.stop(true)
    }
  }, 30_000)

  test('docs/alerts.yml passes promtool check rules', () => {
    if (!promtool) return console.warn('skipped: promtool unavailable (scripts/promtool.sh)')
    const check = promtoolCheck(['check', 'rules', `${ROOT}docs/alerts.yml`])
    expect(check.out).toContain('SUCCESS')
    expect(check.code).toBe(0)
  })
})
