// The one definition of cdc.toml: every key, its type and its default. Environment variables override any leaf key
// as CDC_<SECTION>_<KEY> (e.g. CDC_POSTGRES_URL, CDC_KAFKA_BROKERS=a:9092,b:9092, CDC_HTTP_PORT=8081).
import * as v from 'valibot'

const identifier = v.pipe(v.string(), v.regex(/^[a-z_][a-z0-9_]{0,62}$/, 'a lower-case SQL identifier'))
const port = v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(65535))
const positiveInt = v.pipe(v.number(), v.integer(), v.minValue(1))
const nonNegativeInt = v.pipe(v.number(), v.integer(), v.minValue(0))
const eventType = v.pipe(v.string(), v.regex(/^[A-Z][A-Za-z0-9]{0,99}$/, 'a PascalCase event type'))

/** Maps a change of one table to a business event type (first matching rules win, see capture/rules). */
export const RuleSchema = v.strictObject({
  table: identifier,
  op: v.picklist(['c', 'u', 'd']),
  /** For updates: the rule matches when any of these columns changed; its event carries only their changes. */
  columns: v.optional(v.array(identifier)),
  /** With `columns` of one column: match only when that column's new value equals this (e.g. status SHIPPED). */
  value: v.optional(v.union([v.string(), v.number(), v.boolean()])),
  type: eventType,
})

export const TableCaptureSchema = v.strictObject({
  /** Columns never captured. */
  exclude: v.optional(v.array(identifier), []),
  /** Columns captured as "***" in images and changes. */
  mask: v.optional(v.array(identifier), []),
  /** Columns (e.g. updated_at) whose change alone makes no event; they ride along with the update's first event. */
  incidental: v.optional(v.array(identifier), []),
})

/** An aggregate root whose children are folded into one event per transaction (built at commit time). */
export const RootSchema = v.strictObject({
  children: v.array(
    v.strictObject({
      table: identifier,
      foreignKey: identifier,
      /** Reference columns resolved to a copy of the referenced row as it was in that transaction. */
      lookups: v.optional(
        v.array(v.strictObject({ column: identifier, table: identifier, columns: v.array(identifier) })),
        [],
      ),
    }),
  ),
})

export const TokenSchema = v.strictObject({
  name: v.pipe(v.string(), v.minLength(1)),
  /** hex SHA-256 of the bearer token: the token itself is never stored. */
  sha256: v.pipe(v.string(), v.regex(/^[0-9a-f]{64}$/, 'a hex SHA-256 digest')),
  role: v.picklist(['read', 'write', 'admin']),
})

export const ConfigSchema = v.strictObject({
  postgres: v.optional(
    v.strictObject({
      url: v.optional(v.pipe(v.string(), v.url('a URL')), 'postgres://cdc:cdc@127.0.0.1:55432/cdc'),
      maxConnections: v.optional(positiveInt, 10),
    }),
    {},
  ),
  kafka: v.optional(
    v.strictObject({
      brokers: v.optional(v.pipe(v.array(v.pipe(v.string(), v.minLength(3))), v.minLength(1)), ['127.0.0.1:19092']),
      clientId: v.optional(v.string(), 'cdc'),
      /** `{table}` and `{type}` are replaced; `cdc.{table}` is the default topic of a table's events. */
      topicTemplate: v.optional(v.pipe(v.string(), v.regex(/^[A-Za-z0-9._{}-]+$/)), 'cdc.{table}'),
      /** Per event type topic overrides, e.g. { OrderShipped = "order.shipped.v1" }. */
      topics: v.optional(v.record(v.string(), v.pipe(v.string(), v.regex(/^[A-Za-z0-9._-]+$/))), {}),
      partitions: v.optional(positiveInt, 3),
      replicationFactor: v.optional(positiveInt, 1),
    }),
    {},
  ),
  mongo: v.optional(
    v.strictObject({
      url: v.optional(v.pipe(v.string(), v.regex(/^mongodb(\+srv)?:\/\//, 'a mongodb:// URL')), 'mongodb://127.0.0.1:27017'),
      database: v.optional(identifier, 'cdc'),
    }),
    {},
  ),
  http: v.optional(
    v.strictObject({
      host: v.optional(v.pipe(v.string(), v.minLength(1)), '127.0.0.1'),
      port: v.optional(port, 8080),
      /** Without tokens the API is open, so it refuses to bind beyond loopback unless this is set. */
      allowOpenBind: v.optional(v.boolean(), false),
      bodyLimit: v.optional(positiveInt, 1024 * 1024),
      corsOrigins: v.optional(v.array(v.string()), []),
      requireDeleteReason: v.optional(v.boolean(), false),
      tokens: v.optional(v.array(TokenSchema), []),
      maxPageSize: v.optional(positiveInt, 200),
      /** POST /events: largest `data` payload accepted, in bytes of its JSON text (413 beyond). */
      maxEventPayloadBytes: v.optional(positiveInt, 64 * 1024),
    }),
    {},
  ),
  capture: v.optional(
    v.strictObject({
      /**
       * outbox: trigger → event store + outbox row; emit: trigger → event store + pg_logical_emit_message (relay in wal
       * mode); logical: no row trigger, the relay decodes the row changes from the WAL and writes the event store.
       */
      mode: v.optional(v.picklist(['outbox', 'emit', 'logical']), 'outbox'),
      tracked: v.optional(v.array(identifier), []),
      tables: v.optional(v.record(identifier, TableCaptureSchema), {}),
      rules: v.optional(v.array(RuleSchema), []),
      roots: v.optional(v.record(identifier, RootSchema), {}),
      snapshotBatchSize: v.optional(positiveInt, 1000),
    }),
    {},
  ),
  relay: v.optional(
    v.strictObject({
      mode: v.optional(v.picklist(['poll', 'wal']), 'poll'),
      batchSize: v.optional(positiveInt, 1000),
      lingerMs: v.optional(nonNegativeInt, 5),
      pollIntervalMs: v.optional(positiveInt, 1000),
      slot: v.optional(identifier, 'cdc_relay'),
      publication: v.optional(identifier, 'cdc_outbox'),
      heartbeatMs: v.optional(positiveInt, 10_000),
      transactionalId: v.optional(v.pipe(v.string(), v.minLength(1)), 'cdc-relay'),
      retryMaxMs: v.optional(positiveInt, 30_000),
    }),
    {},
  ),
  consume: v.optional(
    v.strictObject({
      groupId: v.optional(v.pipe(v.string(), v.minLength(1)), 'cdc-history'),
      /** Tables whose topics are consumed; empty means capture.tracked. */
      tables: v.optional(v.array(identifier), []),
      retryMaxMs: v.optional(positiveInt, 30_000),
      /** Which outcomes go to the processing-outcome log. */
      outcomes: v.optional(v.picklist(['off', 'failures', 'all']), 'failures'),
      outcomeRetentionDays: v.optional(positiveInt, 30),
    }),
    {},
  ),
  redrive: v.optional(
    v.strictObject({
      maxRedrives: v.optional(positiveInt, 5),
    }),
    {},
  ),
  log: v.optional(
    v.strictObject({
      level: v.optional(v.picklist(['debug', 'info', 'warn', 'error']), 'info'),
    }),
    {},
  ),
})

export type Config = v.InferOutput<typeof ConfigSchema>
export type Rule = v.InferOutput<typeof RuleSchema>

/** Bad config: exit code 2, one line per problem, nothing started. */
export class ConfigError extends Error {
  constructor(
    readonly source: string,
    readonly problems: string[],
  ) {
    super(`invalid config (${source}):\n${problems.map((p) => `  ${p}`).join('\n')}`)
    this.name = 'ConfigError'
  }
}

export interface LoadOptions {
  /** Path of cdc.toml; missing file is fine when not given explicitly. */
  path?: string
  env?: Record<string, string | undefined>
}

export async function loadConfig(options: LoadOptions = {}): Promise<Config> {
  const env = options.env ?? process.env
  const explicit = options.path ?? env.CDC_CONFIG
  const path = explicit ?? 'cdc.toml'
  let raw: unknown = {}
  const file = Bun.file(path)
  if (await file.exists()) {
    try {
      raw = Bun.TOML.parse(await file.text())
    } catch (error) {
      throw new ConfigError(path, [`not valid TOML: ${(error as Error).message}`])
    }
  } else if (explicit) {
    throw new ConfigError(path, ['file not found'])
  }
  const problems: string[] = []
  const merged = applyEnv(raw as Record<string, unknown>, env, problems)
  const result = v.safeParse(ConfigSchema, merged)
  if (!result.success) {
    for (const issue of result.issues) problems.push(describeIssue(issue))
  }
  if (problems.length > 0 || !result.success) throw new ConfigError(file.size ? path : 'defaults + env', problems)
  return result.output
}

function describeIssue(issue: v.BaseIssue<unknown>): string {
  const key = v.getDotPath(issue) ?? '(top level)'
  if (issue.kind === 'schema' && issue.type === 'strict_object' && issue.input !== undefined) {
    return `${key}: unknown key`
  }
  // Regex and URL checks carry our own wording in the message; type checks say what they expected.
  const expected = issue.type === 'regex' || issue.expected === null ? issue.message.replace(/: Received .*$/s, '') : issue.expected
  return `${key}: expected ${expected}, got ${redact(key, issue.input)}`
}

const SECRET_KEY = /url|token|password|secret|sha256/i

/** Never echo a secret back, even in an error. */
function redact(key: string, value: unknown): string {
  if (SECRET_KEY.test(key) && typeof value === 'string') return '<redacted>'
  return value === undefined ? 'nothing' : JSON.stringify(value)
}

/** Walk the schema's leaves; a set CDC_<PATH> env var replaces the file's value, converted to the leaf's type. */
function applyEnv(raw: Record<string, unknown>, env: Record<string, string | undefined>, problems: string[]) {
  const out = structuredClone(raw)
  const walk = (schema: v.GenericSchema, path: string[]) => {
    const inner = unwrap(schema)
    if (inner.type === 'strict_object' || inner.type === 'object') {
      for (const [key, child] of Object.entries((inner as unknown as { entries: Record<string, v.GenericSchema> }).entries)) {
        walk(child, [...path, key])
      }
      return
    }
    const name = `CDC_${path.map(envName).join('_')}`
    const text = env[name]
    if (text === undefined || path.length === 0) return
    let value: unknown = text
    if (inner.type === 'number') {
      value = text.trim() === '' ? Number.NaN : Number(text)
      if (Number.isNaN(value)) problems.push(`${name}: expected a number, got ${JSON.stringify(text)}`)
    } else if (inner.type === 'boolean') {
      if (!['true', 'false', '1', '0'].includes(text)) problems.push(`${name}: expected true or false, got ${JSON.stringify(text)}`)
      value = text === 'true' || text === '1'
    } else if (inner.type === 'array') {
      value = text.split(',').map((s) => s.trim()).filter(Boolean)
    } else if (inner.type === 'record') {
      try {
        value = JSON.parse(text)
      } catch {
        problems.push(`${name}: expected a JSON object, got ${SECRET_KEY.test(name) ? '<redacted>' : JSON.stringify(text)}`)
      }
    }
    let node = out as Record<string, unknown>
    for (const key of path.slice(0, -1)) {
      if (typeof node[key] !== 'object' || node[key] === null) node[key] = {}
      node = node[key] as Record<string, unknown>
    }
    node[path.at(-1)!] = value
  }
  walk(ConfigSchema, [])
  return out
}

function unwrap(schema: v.GenericSchema): v.GenericSchema {
  let s = schema as v.GenericSchema & { wrapped?: v.GenericSchema; pipe?: v.GenericSchema[] }
  while (s.type === 'optional' && s.wrapped) s = s.wrapped as typeof s
  if (s.pipe && s.pipe[0]) s = s.pipe[0] as typeof s
  return s
}

/** camelCase → SNAKE: maxConnections → MAX_CONNECTIONS. */
function envName(key: string) {
  return key.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase()
}

/** The config as safe to print: URLs lose their passwords, token digests are hidden. */
export function redactConfig(config: Config): unknown {
  return JSON.parse(
    JSON.stringify(config, (key, value) => {
      if (typeof value === 'string' && /url$/i.test(key)) return value.replace(/\/\/([^:/@]+):[^@]*@/, '//$1:***@')
      if (key === 'sha256') return '***'
      return value
    }),
  )
}
