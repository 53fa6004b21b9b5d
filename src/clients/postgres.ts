// The only module that imports postgres.js. Everything else talks to PostgreSQL through `Db`: statement text from sql/
// (or a constant), values always as parameters, identifiers only through `ident()` after an allow-list check.
import postgres from 'postgres'

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
    end: (timeout = 5) => sql.end({ timeout }),
  }
}
