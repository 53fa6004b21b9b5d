// compose.yaml as a team would run it: parsed and checked (pinned tags, healthchecks, tokens from the env file,
// loopback-only host ports), then every cdc service's exact command and environment run against the local stack
// (server host names mapped to the stack, ports to free ones) until its own healthcheck command passes.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { ROOT, createTestEnv, eventually, type TestEnv } from '../support/env.ts'
import { freePort } from '../support/ops.ts'
import { cleanupEnv } from '../relay/support.ts'

type Service = {
  image?: string
  command?: string[]
  environment?: Record<string, string>
  env_file?: { path: string; required: boolean }[]
  healthcheck?: { test?: string[]; disable?: boolean }
  ports?: string[]
  depends_on?: Record<string, { condition: string }>
}
const compose = Bun.YAML.parse(await Bun.file(`${ROOT}compose.yaml`).text()) as { services: Record<string, Service> }
const services = compose.services
const cdcServices = Object.entries(services).filter(([, s]) => s.image === 'cdc:local')
const envFile = Object.fromEntries(
  (await Bun.file(`${ROOT}.env.example`).text())
    .split('\n')
    .filter((l) => /^[A-Z_]+=/.test(l))
    .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
)

let env: TestEnv
const procs: ReturnType<typeof Bun.spawn>[] = []
beforeAll(async () => {
  env = await createTestEnv()
})
afterAll(async () => {
  for (const p of procs) {
    p.kill('SIGTERM')
    await p.exited
  }
  if (env) await cleanupEnv(env)
}, 30_000)

describe('compose.yaml', () => {
  test('pinned images, a healthcheck on every long-running service, loopback-only ports, tokens from .env', () => {
    for (const [name, s] of Object.entries(services)) {
      if (s.image !== 'cdc:local') expect(`${name}: ${s.image}`).toMatch(/:[a-z]*\d+\.\d+(\.\d+)?(-[a-z0-9]+)?$/)
      if (name !== 'migrate') expect(s.healthcheck?.test?.length ?? 0).toBeGreaterThan(0)
      for (const p of s.ports ?? []) expect(p).toStartWith('127.0.0.1:')
    }
    for (const [, s] of cdcServices) expect(s.env_file).toEqual([{ path: '.env', required: true }])
    expect(envFile.CDC_HTTP_TOKENS).toBeDefined()
    expect(JSON.parse(envFile.CDC_HTTP_TOKENS!).length).toBeGreaterThan(0)
    expect(services.api!.environment!.CDC_HTTP_HOST).toBe('0.0.0.0')
    expect(Object.keys(services.relay!.depends_on!)).toContain('migrate')
    expect((services.relay as { deploy?: { replicas?: number } }).deploy?.replicas).toBe(2)
  })

  test("each cdc service's command and environment run on the local stack and pass their own healthcheck", async () => {
    const c = env.config
    const pgUrl = new URL(c.postgres.url)
    const ports = new Map<string, number>()
    const localise = (service: string, value: string) => {
      let v = value.replace(/\$\{([A-Z_]+)(:\?[^}]*)?\}/g, (_, k: string) => envFile[k] ?? '')
      v = v.replace('@postgres:5432/cdc', `@${pgUrl.host}${pgUrl.pathname}`).replace('kafka:9092', c.kafka.brokers[0]!)
      v = v.replace('mongodb://mongo:27017', c.mongo.url)
      return v.replace(/^(9464|8080)$/, () => String(ports.get(service)))
    }
    const run = (name: string, s: Service) => {
      ports.set(name, freePort())
      const environment = Object.fromEntries(Object.entries(s.environment ?? {}).map(([k, v]) => [k, localise(name, String(v))]))
      // The stack's databases and topics of this test, not the compose defaults.
      Object.assign(environment, { CDC_KAFKA_TOPIC_TEMPLATE: c.kafka.topicTemplate, CDC_MONGO_DATABASE: c.mongo.database, CDC_RELAY_TRANSACTIONAL_ID: c.relay.transactionalId, CDC_CONSUME_GROUP_ID: c.consume.groupId })
      const full = { PATH: process.env.PATH ?? '', ...envFile, ...environment }
      const healthcheck = (s.healthcheck?.test ?? []).slice(2).map((a) => a.replace(/:(9464|8080)\//, `:${ports.get(name)}/`))
      return { full, healthcheck }
    }
    const cli = (args: string[], e: Record<string, string>, stdout: 'pipe' | 'ignore' = 'pipe') =>
      Bun.spawn([process.execPath, 'run', 'src/cli.ts', ...args], { cwd: ROOT, env: e, stdout, stderr: 'pipe' })

    const migrate = run('migrate', services.migrate!)
    const m = cli(services.migrate!.command!, migrate.full)
    expect(await m.exited).toBe(0)

    for (const name of ['relay', 'consume', 'api']) {
      const s = services[name]!
      const { full, healthcheck } = run(name, s)
      expect(healthcheck[0]).toBe('healthcheck')
      const p = cli(s.command!, full, 'ignore')
      procs.push(p)
      await eventually(async () => {
        if (p.exitCode !== null) throw new Error(`${name} exited with ${p.exitCode}: ${await new Response(p.stderr as ReadableStream).text()}`)
        return (await cli(healthcheck, full).exited) === 0
      }, 60_000, 1000)
    }
  }, 180_000)
})
