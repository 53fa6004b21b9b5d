// The one definition of cdc.toml: every key, its type and its default. Environment variables override any leaf key
// as CDC_<SECTION>_<KEY> (e.g. CDC_POSTGRES_URL, CDC_KAFKA_BROKERS=a:9092,b:9092, CDC_HTTP_PORT=8081).
import * as v from 'valibot'
import { parse as parseToml, TomlError } from 'smol-toml'
import { closest, didYouMean } from './did-you-mean.ts'
import { withDemo } from './demo/capture.ts'
import { canonicalName, TableNameError } from './tables.ts'

const identifier = v.pipe(v.string(), v.regex(/^[a-z_][a-z0-9_]{0,62}$/, 'a lower-case SQL identifier'))
const port = v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(65535))
const positiveInt = v.pipe(v.number(), v.integer(), v.minValue(1))
const nonNegativeInt = v.pipe(v.number(), v.integer(), v.minValue(0))
/**
 * How long the relay lets a batch that is not full wait for more changes. Each batch is one Kafka transaction, paid
 * for per transaction (partition registrations, commit markers): at 5 ms a relay that kept up sent many small ones
 * (README, Benchmarks: 25 ms cut Kafka's CPU per captured row to less than half).
 */
export const RELAY_LINGER_MS = 25
/** A column name as the catalog spells it (any case; it reaches SQL only quoted). */
const column = v.pipe(v.string(), v.minLength(1), v.maxLength(63), v.regex(/^[^\u0000]*$/, 'a column name'))
/** A table name as SQL writes it (`orders`, `app.orders`, `app."LineItems"`), stored canonical (src/tables.ts). */
const tableName = v.pipe(
  v.string(),
  v.rawTransform(({ dataset, addIssue, NEVER }) => {
    try {
      return canonicalName(dataset.value)
    } catch (error) {
      if (!(error instanceof TableNameError)) throw error
      addIssue({ message: error.message, expected: 'a table name ([schema.]table, quoted where needed)' })
      return NEVER
    }
  }),
)
const eventType = v.pipe(v.string(), v.regex(/^[A-Z][A-Za-z0-9]{0,99}$/, 'a PascalCase event type'))

/** Maps a change of one table to a business event type (first matching rules win, see capture/rules). */
export const RuleSchema = v.pipe(
  v.strictObject({
    table: tableName,
    op: v.picklist(['c', 'u', 'd']),
    /** For updates: the rule matches when any of these columns changed; its event carries only their changes. */
    columns: v.optional(v.array(column)),
    /** With `columns` of one column: match only when that column's new value equals this (e.g. status SHIPPED). */
    value: v.optional(v.union([v.string(), v.number(), v.boolean()])),
    type: eventType,
    /** Inserts and deletes: the event's reason when the writer gave none (e.g. HARD_DELETE). */
    reason: v.optional(v.pipe(v.string(), v.minLength(1), v.maxLength(200))),
  }),
  v.forward(
    v.rawCheck(({ dataset, addIssue }) => {
      if (dataset.typed && dataset.value.op === 'u' && dataset.value.reason !== undefined) {
        addIssue({ message: 'a reason is for insert and delete rules', expected: 'no reason on an update rule (op c or d only)', input: dataset.value.reason })
      }
    }),
    ['reason'],
  ),
)

export const TableCaptureSchema = v.strictObject({
  /** Columns never captured. */
  exclude: v.optional(v.array(column), []),
  /** Columns captured as "***" in images and changes. */
  mask: v.optional(v.array(column), []),
  /** Columns (e.g. updated_at) whose change alone makes no event; they ride along with the update's first event. */
  incidental: v.optional(v.array(column), []),
  /**
   * Bookkeeping columns (e.g. updated_at): in `before`/`after`, but never in `changes`, never matched by a rule, and
   * their change alone makes no event.
   */
  bookkeeping: v.optional(v.array(column), []),
})

/**
 * An aggregate root: its events carry its document as of the commit (the root row plus one array per child table,
 * each child with copies of its lookups as they were when the child row was written).
 */
export const RootSchema = v.strictObject({
  /** Instead, keep the root's events as row images and add one `<Aggregate>DocumentChanged` per transaction. */
  documentEvent: v.optional(v.boolean(), false),
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

// ── Security: TLS and authentication of each server (clients/security.ts turns these into driver options). ──

const pemPath = v.pipe(v.string(), v.minLength(1))

const kafkaSecurity = {
  tls: v.optional(
    v.strictObject({
      enabled: v.optional(v.boolean(), false),
      /** PEM file of the CA(s) that signed the brokers' certificates (default: the system's CAs). */
      ca: v.optional(pemPath),
      /** Client certificate and key (PEM files) for brokers that require one (ssl.client.auth=required). */
      cert: v.optional(pemPath),
      key: v.optional(pemPath),
      /** Check that the certificate names the broker (its host, or `servername`). Off only for testing. */
      verifyHostname: v.optional(v.boolean(), true),
      /** Name to check the certificate against (and send as SNI) instead of the broker's host. */
      servername: v.optional(v.pipe(v.string(), v.minLength(1))),
    }),
    {},
  ),
  sasl: v.optional(
    v.strictObject({
      mechanism: v.optional(v.picklist(['none', 'plain', 'scram-sha-256', 'scram-sha-512']), 'none'),
      username: v.optional(v.string(), ''),
      password: v.optional(v.string(), ''),
    }),
    {},
  ),
}

const postgresSecurity = {
  /** libpq's sslmode; unset: whatever the URL says (postgres.js reads ?sslmode=), else no TLS. */
  sslMode: v.optional(v.picklist(['disable', 'prefer', 'require', 'verify-ca', 'verify-full'])),
  /** PEM file of the CA for verify-ca / verify-full (libpq's sslrootcert). */
  sslRootCert: v.optional(pemPath),
  /** Client certificate and key (PEM files) for `hostssl … cert` rules. */
  sslCert: v.optional(pemPath),
  sslKey: v.optional(pemPath),
}

const mongoSecurity = {
  tls: v.optional(
    v.strictObject({
      enabled: v.optional(v.boolean(), false),
      /** PEM file of the CA (the driver's tlsCAFile). */
      ca: v.optional(pemPath),
      /** One PEM file with the client certificate and its key (tlsCertificateKeyFile), for x.509 or mutual TLS. */
      certificateKey: v.optional(pemPath),
      verifyHostname: v.optional(v.boolean(), true),
    }),
    {},
  ),
  /** Credentials kept out of the URL (so they can come from a secret as CDC_MONGO_PASSWORD). */
  username: v.optional(v.string()),
  password: v.optional(v.string()),
  authSource: v.optional(v.string()),
  authMechanism: v.optional(v.picklist(['SCRAM-SHA-1', 'SCRAM-SHA-256', 'MONGODB-X509', 'PLAIN'])),
}

// ── Operations: health and metrics of the roles run without the API (`cdc relay`, `cdc consume`). ──

/** The ops port of a process that runs no API; `cdc all` and `cdc serve` answer on http.port instead. */
export const DEFAULT_OPS_PORT = 9464

const OpsSchema = v.optional(
  v.strictObject({
    host: v.optional(v.pipe(v.string(), v.minLength(1)), '127.0.0.1'),
    /** Unset: DEFAULT_OPS_PORT, and a port in use only costs a warning; 0: no ops endpoint; set: in use is fatal. */
    port: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(65535))),
  }),
  {},
)

export const ConfigSchema = v.strictObject({
  postgres: v.optional(
    v.strictObject({
      url: v.optional(v.pipe(v.string(), v.url('a URL')), 'postgres://cdc:cdc@127.0.0.1:55432/cdc'),
      maxConnections: v.optional(positiveInt, 10),
      ...postgresSecurity,
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
      ...kafkaSecurity,
    }),
    {},
  ),
  mongo: v.optional(
    v.strictObject({
      url: v.optional(v.pipe(v.string(), v.regex(/^mongodb(\+srv)?:\/\//, 'a mongodb:// URL')), 'mongodb://127.0.0.1:27017'),
      database: v.optional(identifier, 'cdc'),
      ...mongoSecurity,
    }),
    {},
  ),
  http: v.optional(
    v.strictObject({
      host: v.optional(v.pipe(v.string(), v.minLength(1)), '127.0.0.1'),
      port: v.optional(port, 8080),
      /** Without tokens the API is open, so it refuses to bind beyond loopback unless this is set. */
      allowOpenBind: v.optional(v.boolean(), false),
      /**
       * Host names the API and console answer for besides IP literals, localhost and http.host (DNS-rebinding
       * guard); ".example.com" also allows its subdomains. Other names get 421.
       */
      allowedHosts: v.optional(v.array(v.pipe(v.string(), v.regex(/^\.?[A-Za-z0-9][A-Za-z0-9.-]{0,252}$/, 'a host name'))), []),
      /** A request still unanswered after this long gets a 503 problem (Bun's idle timeout is kept above it). */
      requestTimeoutMs: v.optional(v.pipe(v.number(), v.integer(), v.minValue(100), v.maxValue(240_000)), 30_000),
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
      /** Tables `cdc migrate` tracks (added to the tracked set in schema cdc; `cdc track` adds more at run time). */
      tracked: v.optional(v.array(tableName), []),
      /** Column options per table, keyed by table name. */
      tables: v.optional(v.record(tableName, TableCaptureSchema), {}),
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
      lingerMs: v.optional(nonNegativeInt, RELAY_LINGER_MS),
      pollIntervalMs: v.optional(positiveInt, 1000),
      slot: v.optional(identifier, 'cdc_relay'),
      publication: v.optional(identifier, 'cdc_outbox'),
      heartbeatMs: v.optional(positiveInt, 10_000),
      transactionalId: v.optional(v.pipe(v.string(), v.minLength(1)), 'cdc-relay'),
      retryMaxMs: v.optional(positiveInt, 30_000),
      /**
       * How long one Kafka transaction may stay open: a large source transaction (logical mode) is published in one,
       * part by part. At most the broker's transaction.max.timeout.ms (15 minutes by default).
       */
      transactionTimeoutMs: v.optional(positiveInt, 300_000),
      /** Tries of a batch that times out while MongoDB answers, before its failing messages are isolated (DLQ). */
      batchAttempts: v.optional(positiveInt, 5),
    }),
    {},
  ),
  consume: v.optional(
    v.strictObject({
      groupId: v.optional(v.pipe(v.string(), v.minLength(1)), 'cdc-history'),
      /** Tables whose topics are consumed; empty means the tracked set (live). */
      tables: v.optional(v.array(tableName), []),
      retryMaxMs: v.optional(positiveInt, 30_000),
      /** Tries of a batch that times out while MongoDB answers, before its failing messages are isolated (DLQ). */
      batchAttempts: v.optional(positiveInt, 5),
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
  /** The demo application (customers, products, orders): its schema, capture rules and CRUD routes. Off by default. */
  demo: v.optional(
    v.strictObject({
      enabled: v.optional(v.boolean(), false),
    }),
    {},
  ),
  log: v.optional(
    v.strictObject({
      level: v.optional(v.picklist(['debug', 'info', 'warn', 'error']), 'info'),
    }),
    {},
  ),
  ops: OpsSchema,
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

/** A command-line flag that sets a config key (e.g. `serve --port 9000` → http.port); applied after the environment. */
export interface ArgOverride {
  flag: string
  key: string
  text: string
}

export interface LoadOptions {
  /** Path of cdc.toml; missing file is fine when not given explicitly. */
  path?: string
  env?: Record<string, string | undefined>
  args?: ArgOverride[]
}

export async function loadConfig(options: LoadOptions = {}): Promise<Config> {
  const env = options.env ?? process.env
  const explicit = options.path ?? env.CDC_CONFIG
  const path = explicit ?? 'cdc.toml'
  let raw: Record<string, unknown> = {}
  const file = Bun.file(path)
  if (await file.exists()) {
    const problem = readToml(new Uint8Array(await file.arrayBuffer()))
    if (typeof problem === 'string') throw new ConfigError(path, [problem])
    raw = problem
  } else if (explicit) {
    throw new ConfigError(path, ['file not found'])
  }
  const problems: string[] = []
  const merged = applyOverrides(raw, env, options.args ?? [], problems)
  const result = v.safeParse(ConfigSchema, merged)
  if (!result.success) {
    for (const issue of result.issues) problems.push(describeIssue(issue, options.args ?? []))
  }
  if (problems.length > 0 || !result.success) throw new ConfigError(file.size ? path : 'defaults + env', problems)
  return withDemo(result.output)
}

const utf8 = new TextDecoder('utf-8', { fatal: true })

/**
 * The file's tables, or why it cannot be read exactly as written. Bun.TOML.parse is not used: it stops silently at
 * the first non-ASCII character outside a string and returns the part before it (a stray no-break space dropped every
 * http.tokens entry and opened the API). smol-toml implements TOML 1.0 strictly and throws on anything else, so a
 * file is either read whole or refused. Its error message quotes the offending lines: only line, column and reason
 * are kept, since those lines may hold a password.
 */
export function readToml(bytes: Uint8Array): Record<string, unknown> | string {
  if ((bytes[0] === 0xfe && bytes[1] === 0xff) || (bytes[0] === 0xff && bytes[1] === 0xfe)) {
    return 'the file is UTF-16 (it starts with a byte-order mark); save it as UTF-8'
  }
  if (bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) {
    return 'the file starts with a byte-order mark; save it as UTF-8 without one'
  }
  const nul = bytes.indexOf(0)
  if (nul >= 0) return `the file contains a NUL byte (at byte ${nul}): UTF-16 or binary, not UTF-8 text`
  let text: string
  try {
    text = utf8.decode(bytes)
  } catch {
    return `the file is not valid UTF-8 (line ${lineOfInvalidUtf8(bytes)}); save it as UTF-8`
  }
  try {
    return parseToml(text) as Record<string, unknown>
  } catch (error) {
    if (!(error instanceof TomlError)) throw error
    const reason = error.message.split('\n')[0]!.replace(/^Invalid TOML document: /, '')
    return `not valid TOML: line ${error.line}, column ${error.column}: ${reason}`
  }
}

/** The line of the first byte sequence that is not UTF-8 (the longest valid prefix, found by bisection). */
function lineOfInvalidUtf8(bytes: Uint8Array): number {
  let lo = 0
  let hi = bytes.length
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1
    try {
      // stream: a prefix cut inside a multi-byte sequence is not an error yet.
      new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(0, mid), { stream: true })
      lo = mid
    } catch {
      hi = mid - 1
    }
  }
  return bytes.subarray(0, lo).filter((b) => b === 0x0a).length + 1
}

function describeIssue(issue: v.BaseIssue<unknown>, args: ArgOverride[]): string {
  const path = v.getDotPath(issue)
  const key = args.find((a) => a.key === path)?.flag ?? path ?? '(top level)'
  if (issue.kind === 'schema' && issue.type === 'strict_object' && issue.expected === 'never') {
    return `${key}: unknown key${suggest(path ?? '')}`
  }
  if ((issue.type === 'strict_object' || issue.type === 'object') && issue.input === undefined) return `${key}: required`
  // Our own wording where a check has one ('a lower-case SQL identifier'); valibot's default messages quote the
  // received value, so they are never used: what was expected, then the value as describeValue shows it.
  const custom = !/received/i.test(issue.message)
  const expected = (issue.type === 'regex' || issue.expected === null) && custom ? issue.message : (issue.expected ?? issue.type)
  return `${key}: expected ${EXPECTED[expected] ?? expected}, got ${describeValue(path ?? '', issue.input)}`
}

const EXPECTED: Record<string, string> = { Object: 'a table', Array: 'an array' }

/** `http.prot: unknown key; did you mean port?` */
function suggest(path: string): string {
  const keys = path.split('.')
  const parent = schemaAt(keys.slice(0, -1))
  return parent ? didYouMean(keys.at(-1) ?? '', Object.keys(entriesOf(parent) ?? {})) : ''
}

/** Keys (and CDC_* names) whose values are never shown: URLs may carry passwords; tokens, digests and keys are secrets. */
const SECRET_KEY = /url|token|password|passphrase|secret|sha256|sasl|(^|[._])key$/i

/**
 * A value as shown in an error. Secret-named keys show only their type, whatever it is (a URL inside an array or an
 * inline table is still a URL); tables and arrays show only their type, since any of their members may be a secret;
 * other strings lose URL credentials and are cut short.
 */
function describeValue(key: string, value: unknown): string {
  if (value === undefined) return 'nothing'
  const type = value === null ? 'null' : Array.isArray(value) ? 'an array' : value instanceof Date ? 'a date-time' : typeof value === 'object' ? 'a table' : `a ${typeof value}`
  if (SECRET_KEY.test(key)) return `${type} (value hidden)`
  if (typeof value === 'string') {
    const shown = scrubUrl(value)
    return JSON.stringify(shown.length > 80 ? `${shown.slice(0, 80)}…` : shown)
  }
  if (typeof value === 'number' || typeof value === 'boolean') return String(value)
  return type
}

const scrubUrl = (text: string) => text.replace(/(\w+:\/\/[^:/@\s]*):[^@\s]*@/g, '$1:***@')

/** Environment variables that are not config keys but belong to cdc's own tooling (test stack, bench, docs). */
const TOOLING_ENV = /^CDC_(STACK|TEST|BENCH|CHAOS|UPDATE)_/

/** Every CDC_* variable the config reads: one per leaf key, plus CDC_CONFIG. */
export function configEnvNames(): string[] {
  const names = ['CDC_CONFIG']
  forEachLeaf(ConfigSchema, [], (path) => names.push(envNameOf(path)))
  return names
}

/** Set CDC_* variables that no key reads (a typo such as CDC_KAFKA_PARTITONS), with the closest known name. */
export function unknownEnv(env: Record<string, string | undefined> = process.env): { name: string; didYouMean?: string }[] {
  const known = configEnvNames()
  return Object.keys(env)
    .filter((name) => name.startsWith('CDC_') && env[name] !== undefined && !known.includes(name) && !TOOLING_ENV.test(name))
    .sort()
    .map((name) => {
      const didYouMean = closest(name, known)
      return didYouMean ? { name, didYouMean } : { name }
    })
}

function entriesOf(schema: v.GenericSchema): Record<string, v.GenericSchema> | undefined {
  const inner = unwrap(schema)
  return inner.type === 'strict_object' || inner.type === 'object'
    ? (inner as unknown as { entries: Record<string, v.GenericSchema> }).entries
    : undefined
}

function schemaAt(path: string[]): v.GenericSchema | undefined {
  let schema: v.GenericSchema | undefined = ConfigSchema
  for (const key of path) schema = schema && entriesOf(schema)?.[key]
  return schema
}

function forEachLeaf(schema: v.GenericSchema, path: string[], visit: (path: string[], leaf: v.GenericSchema) => void) {
  const entries = entriesOf(schema)
  if (!entries) return void (path.length > 0 && visit(path, unwrap(schema)))
  for (const [key, child] of Object.entries(entries)) forEachLeaf(child, [...path, key], visit)
}

/**
 * Walk the schema's leaves; a set CDC_<PATH> env var replaces the file's value, converted to the leaf's type, then
 * the command-line overrides do the same. Arrays of tables (http.tokens) take a JSON array; http.tokens also takes
 * the short form `name:sha256:role,…`, so tokens can live in the environment as the config file's header asks.
 */
function applyOverrides(raw: Record<string, unknown>, env: Record<string, string | undefined>, args: ArgOverride[], problems: string[]) {
  const out = structuredClone(raw)
  const set = (path: string[], value: unknown) => {
    let node = out as Record<string, unknown>
    for (const key of path.slice(0, -1)) {
      if (typeof node[key] !== 'object' || node[key] === null || Array.isArray(node[key])) node[key] = {}
      node = node[key] as Record<string, unknown>
    }
    node[path.at(-1)!] = value
  }
  forEachLeaf(ConfigSchema, [], (path, leaf) => {
    const name = envNameOf(path)
    const text = env[name]
    const value = text === undefined ? SKIP : convert(name, text, leaf, problems)
    if (value !== SKIP) set(path, value)
  })
  for (const arg of args) {
    const path = arg.key.split('.')
    const leaf = schemaAt(path)
    if (!leaf) throw new Error(`no config key ${arg.key} for ${arg.flag}`)
    const value = convert(arg.flag, arg.text, unwrap(leaf), problems)
    if (value !== SKIP) set(path, value)
  }
  return out
}

/** A value that could not be converted: its problem is reported once, and the key keeps its file/default value. */
const SKIP = Symbol('skip')

function convert(name: string, text: string, leaf: v.GenericSchema, problems: string[]): unknown {
  const shown = SECRET_KEY.test(name) ? '<redacted>' : JSON.stringify(scrubUrl(text.length > 80 ? `${text.slice(0, 80)}…` : text))
  if (leaf.type === 'number') {
    if (/^\s*-?\d+(\.\d+)?\s*$/.test(text)) return Number(text)
    problems.push(`${name}: expected a number, got ${shown}`)
    return SKIP
  }
  if (leaf.type === 'boolean') {
    if (['true', 'false', '1', '0'].includes(text)) return text === 'true' || text === '1'
    problems.push(`${name}: expected true or false, got ${shown}`)
    return SKIP
  }
  if (leaf.type === 'array' && entriesOf((leaf as unknown as { item: v.GenericSchema }).item)) {
    if (text.trimStart().startsWith('[')) return parseJson(name, text, 'a JSON array', problems)
    const fields = Object.keys(entriesOf((leaf as unknown as { item: v.GenericSchema }).item)!)
    if (name !== 'CDC_HTTP_TOKENS') {
      problems.push(`${name}: expected a JSON array of tables, got ${shown}`)
      return SKIP
    }
    // name:sha256:role — the fields in schema order; a malformed entry is reported by the schema with its index.
    return text
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean)
      .map((entry) => Object.fromEntries(entry.split(':').map((part, i) => [fields[i] ?? `field${i + 1}`, part])))
  }
  if (leaf.type === 'array') return text.split(',').map((s) => s.trim()).filter(Boolean)
  if (leaf.type === 'record') return parseJson(name, text, 'a JSON object', problems)
  return text
}

function parseJson(name: string, text: string, what: string, problems: string[]): unknown {
  try {
    return JSON.parse(text)
  } catch {
    problems.push(`${name}: expected ${what}, got ${SECRET_KEY.test(name) ? '<redacted>' : 'text that is not JSON'}`)
    return SKIP
  }
}

function unwrap(schema: v.GenericSchema): v.GenericSchema {
  let s = schema as v.GenericSchema & { wrapped?: v.GenericSchema; pipe?: v.GenericSchema[] }
  while (s.type === 'optional' && s.wrapped) s = s.wrapped as typeof s
  if (s.pipe && s.pipe[0]) s = s.pipe[0] as typeof s
  return s
}

/** http.maxConnections → CDC_HTTP_MAX_CONNECTIONS. */
function envNameOf(path: string[]) {
  return `CDC_${path.map((key) => key.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase()).join('_')}`
}

/** The config as safe to print (`cdc config print`): URLs lose their credentials, other secrets are hidden. */
export function redactConfig(config: Config): unknown {
  return JSON.parse(
    JSON.stringify(config, (key, value) => {
      if (typeof value !== 'string' || !SECRET_KEY.test(key)) return value
      return /url$/i.test(key) ? scrubUrl(value).replace(/([?&](password|pass|pwd)=)[^&]*/gi, '$1***') : '***'
    }),
  )
}
