// API test harness: a migrated per-file database, the app called in-process (`app.request`), and the row counts that
// prove a rejected request changed nothing.
import { createTestEnv, type TestEnv } from '../support/env.ts'
import type { Config } from '../../src/config.ts'
import { migrate } from '../../src/capture/migrate.ts'
import { createApp } from '../../src/api/app.ts'
import type { DlqAdmin } from '../../src/api/env.ts'
import type { Logger } from '../../src/log.ts'

export interface CallOptions {
  body?: unknown
  /** Raw body (sent as is), for malformed input. */
  raw?: string | Uint8Array
  headers?: Record<string, string>
  token?: string
}

export interface ApiEnv extends TestEnv {
  app: ReturnType<typeof createApp>
  call(method: string, path: string, options?: CallOptions): Promise<{ status: number; body: any; headers: Headers }>
  /** Rows of every demo table plus the event store: unchanged counts prove a request changed nothing. */
  counts(): Promise<Record<string, number>>
}

const noDlq: DlqAdmin = {
  list: async () => ({ items: [], nextCursor: null }),
  redrive: async (f) => ({ redriven: 0, kept: 0, dryRun: f.dryRun === true, items: [] }),
}

export interface ApiEnvOptions {
  dlq?: DlqAdmin
  /** Replaces the runtime's (silent) logger, e.g. to read the access log. */
  log?: Logger
}

export async function createApiEnv(overrides: (c: Config) => void = () => {}, options: ApiEnvOptions = {}): Promise<ApiEnv> {
  const env = await createTestEnv(overrides)
  await migrate(env.rt)
  const rt = env.rt
  const deps = { config: rt.config, log: options.log ?? rt.log, db: rt.db, kafka: rt.kafka, mongo: rt.mongo, tracked: rt.tracked, dlq: options.dlq ?? noDlq }
  const app = createApp(deps)
  return {
    ...env,
    app,
    async call(method, path, o = {}) {
      const headers: Record<string, string> = { ...o.headers }
      if (o.body !== undefined) headers['content-type'] ??= 'application/json'
      if (o.token) headers.authorization = `Bearer ${o.token}`
      const res = await app.request(path, {
        method,
        headers,
        body: o.raw ?? (o.body === undefined ? undefined : JSON.stringify(o.body)),
      })
      const text = await res.text()
      let body: unknown = text
      try {
        body = text ? JSON.parse(text) : null
      } catch {}
      return { status: res.status, body, headers: res.headers }
    },
    async counts() {
      const [row] = await rt.db().query<Record<string, number>>(
        `select (select count(*) from customers)::int as customers, (select count(*) from products)::int as products,
                (select count(*) from orders)::int as orders, (select count(*) from order_lines)::int as order_lines,
                (select count(*) from cdc.event_store)::int as events`,
      )
      return row!
    },
  }
}
