// The only module that imports postgres.js. Everything else talks to PostgreSQL through `Db`: statement text from sql/
// (or a constant), values always as parameters, identifiers only through `ident()` after an allow-list check.
import postgres from 'postgres'
import type { Duplex } from 'node:stream'
import type { PgSsl } from './security.ts'

export type Row = Record<string, unknown>

export interface Db {
  /** One statement; values only through `params` ($1, $2, …). */
  query<T = Row>(text: string, params?: readonly unknown[]): Promise<T[]>
  /** Several statements without parameters (migration files). */
  script(text: string): Promise<void>
  /** A transaction: commits when `fn` resolves, rolls back when it throws. */
  begin<T>(fn: (tx: Db) => Promise<T>): Promise<T>
  /** LISTEN on a channel; `onNotify` runs for each NOTIFY payload (reconnects on its own). */
  listen(channel: string, onNotify: (payload: string) => void): Promise<{ unlisten(): Promise<void> }>
  /** A dedicated connection (session-level state such as advisory locks lives on it). */
  reserve(): Promise<ReservedDb>
  end(timeoutSeconds?: number): Promise<void>
}

export interface ReservedDb extends Db {
  release(): void
  /** Resolves when this connection closes (server gone, terminated): a lock held on it is gone too. */
  readonly closed: Promise<void>
}

export interface DbOptions {
  url: string
  max?: number
  /** Application name shown in pg_stat_activity. */
  name?: string
  /** Extra options for replication connections and the like. */
  connection?: Record<string, string>
  /** TLS (postgres.sslMode …); undefined leaves it to the URL's sslmode. */
  ssl?: PgSsl
}

/** PostgreSQL error with its SQLSTATE code (e.g. 23505 unique_violation), for callers that map errors. */
export interface DbError extends Error {
  code?: string
  constraint_name?: string
  detail?: string
  column_name?: string
  table_name?: string
}

export function isDbError(error: unknown, code?: string): error is DbError {
  return error instanceof postgres.PostgresError && (code === undefined || error.code === code)
}

/** Quote an identifier that the caller has already checked against its allow-list. */
export function ident(name: string): string {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(name)) throw new Error(`refusing identifier ${JSON.stringify(name)}`)
  return `"${name}"`
}

type Sql = postgres.Sql<Record<string, never>>

export function connect(options: DbOptions): Db {
  const closers = new Set<() => void>()
  const sql: Sql = postgres(options.url, {
    ...(options.ssl === undefined ? {} : { ssl: options.ssl }),
    max: options.max ?? 10,
    onnotice: () => {},
    connection: { application_name: options.name ?? 'cdc', ...options.connection },
    // int8 arrives as a string by default; our sequences and versions stay far below 2^53, so numbers are exact.
    types: { int8: { to: 20, from: [20], serialize: (n: number) => String(n), parse: (s: string) => Number(s) } } as never,
    onclose: () => {
      for (const close of closers) close()
    },
  })
  return wrap(sql, closers)
}

function wrap(sql: Sql, closers: Set<() => void>): Db {
  return {
    query: <T>(text: string, params: readonly unknown[] = []) =>
      sql.unsafe(text, params as never[]) as unknown as Promise<T[]>,
    script: async (text) => {
      await sql.unsafe(text).simple()
    },
    begin: <T>(fn: (tx: Db) => Promise<T>) =>
      sql.begin((tx) => fn(wrap(tx as unknown as Sql, closers))) as Promise<T>,
    listen: async (channel, onNotify) => {
      const { unlisten } = await sql.listen(channel, onNotify)
      return { unlisten }
    },
    reserve: async () => {
      const reserved = await sql.reserve()
      let resolveClosed!: () => void
      const closed = new Promise<void>((resolve) => (resolveClosed = resolve))
      // postgres.js reports closes per connection id only; any close ends our claim on this one, which is the safe side.
      const onClose = () => resolveClosed()
      closers.add(onClose)
      return {
        ...wrap(reserved as unknown as Sql, closers),
        closed,
        release: () => {
          closers.delete(onClose)
          reserved.release()
        },
      }
    },
    end: (timeout = 5) => endWithin(sql, timeout),
  }
}

/**
 * Ends a pool, waiting at most `seconds` for its queries before destroying its connections, and never longer than a
 * little after that: postgres.js' destroy can fail on a connection the network already dropped, and its end() then
 * never resolves (a relay that lost its database stayed stuck in its session's teardown).
 */
function endWithin(sql: { end(options: { timeout: number }): Promise<void> }, seconds: number): Promise<void> {
  return Promise.race([sql.end({ timeout: seconds }).catch(() => {}), Bun.sleep((seconds + 2) * 1000)])
}

/** A logical replication stream (CopyBoth): the server's CopyData payloads in, standby status updates out. */
export interface ReplicationStream {
  /** Each CopyData payload: XLogData ('w') or primary keepalive ('k'). */
  onData(fn: (chunk: Buffer) => void): void
  /** Sends one CopyData payload (a standby status update 'r'). */
  write(chunk: Buffer): void
  /** Stop/continue reading (backpressure while the consumer of the stream is behind). */
  pause(): void
  resume(): void
  /** Resolves (never rejects) when the stream or its connection ends, with the error if there was one. */
  readonly closed: Promise<Error | undefined>
  end(): Promise<void>
}

export interface ReplicationOptions {
  url: string
  ssl?: PgSsl
  slot: string
  publication: string
  name?: string
  /** Deliver pg_logical_emit_message records ('M'); PostgreSQL 14+. */
  messages?: boolean
}

/**
 * START_REPLICATION on a persistent slot with pgoutput, from the slot's confirmed position. Decoding the stream is the
 * caller's job; what it confirms as flushed is what the server may discard, so only confirm what is safely elsewhere.
 */
export async function startReplication(options: ReplicationOptions): Promise<ReplicationStream> {
  // Both names are interpolated into a replication command (no parameters there): identifiers only.
  const slot = ident(options.slot).slice(1, -1)
  const publication = ident(options.publication).slice(1, -1)
  let resolveClosed!: (error: Error | undefined) => void
  const closed = new Promise<Error | undefined>((resolve) => (resolveClosed = resolve))
  const sql = postgres(options.url, {
    ...(options.ssl === undefined ? {} : { ssl: options.ssl }),
    max: 1,
    fetch_types: false,
    // Never recycled: the stream lives as long as the connection.
    idle_timeout: null,
    max_lifetime: null,
    onnotice: () => {},
    connection: { application_name: options.name ?? 'cdc-relay-wal', replication: 'database' },
    onclose: () => resolveClosed(new Error('replication connection closed')),
  } as never)
  try {
    const command = `START_REPLICATION SLOT ${slot} LOGICAL 0/0 (proto_version '1', publication_names '${publication}'${
      options.messages === false ? '' : ", messages 'true'"
    })`
    // postgres.js resolves CopyBoth as a Duplex (typed Writable): its readable side carries the CopyData payloads.
    const query = sql.unsafe(command)
    // An error the server sends once streaming runs (e.g. from the output plugin) rejects the query itself.
    query.catch((error: Error) => resolveClosed(error))
    const stream = (await query.writable()) as unknown as Duplex
    stream.on('error', (error: Error) => resolveClosed(error))
    stream.on('close', () => resolveClosed(undefined))
    return {
      onData: (fn) => stream.on('data', fn),
      write: (chunk) => void stream.write(chunk),
      pause: () => void stream.pause(),
      resume: () => void stream.resume(),
      closed,
      end: async () => {
        stream.destroy()
        await endWithin(sql, 1)
      },
    }
  } catch (error) {
    await endWithin(sql, 1)
    throw error
  }
}
