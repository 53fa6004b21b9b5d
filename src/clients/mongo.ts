// The only module that imports the mongodb driver. It stays inside the subset that real MongoDB 7/8 and FerretDB share
// (see DESIGN.md): no transactions, sessions or change streams; duplicates are recognised by code 11000 only.
import {
  MongoBulkWriteError,
  MongoClient,
  MongoError,
  MongoNetworkError,
  MongoNetworkTimeoutError,
  MongoServerError,
  type AnyBulkWriteOperation,
  type Document,
} from 'mongodb'
import type { MongoSecurity } from './security.ts'

export type Doc = Record<string, unknown>
export type Filter = Record<string, unknown>
export type Sort = Record<string, 1 | -1>

export interface FindOptions {
  sort?: Sort
  skip?: number
  limit?: number
  projection?: Record<string, 0 | 1>
}

export interface IndexSpec {
  key: Record<string, 1 | -1>
  name: string
  unique?: boolean
}

export type WriteOp =
  | { insertOne: { document: Doc } }
  | { updateOne: { filter: Filter; update: Doc; upsert?: boolean } }
  | { deleteMany: { filter: Filter } }

export interface InsertResult {
  inserted: number
  /** Positions (in the input) of documents that already existed (duplicate key, code 11000). */
  duplicates: number[]
}

export interface Collection<T extends Doc = Doc> {
  /** Unordered insert; duplicates are reported, not thrown. Any other write error throws `StoreError`. */
  insertMany(docs: T[]): Promise<InsertResult>
  /**
   * Unordered bulk write; per-operation duplicate errors are reported, anything else throws `StoreError`. `matched`:
   * how many update filters matched a document (a version-guarded update that matched nothing did not apply).
   */
  bulkWrite(ops: WriteOp[]): Promise<{ duplicates: number[]; matched: number }>
  find(filter: Filter, options?: FindOptions): Promise<T[]>
  findOne(filter: Filter): Promise<T | null>
  /**
   * Every matching document, in batches of `batchSize`, from one server cursor (one query on FerretDB, not one per
   * page): for maintenance passes over a whole collection (backfill, archive).
   */
  scan(filter: Filter, options: { batchSize: number; projection?: Record<string, 0 | 1> }): AsyncIterable<T[]>
  count(filter?: Filter): Promise<number>
  deleteMany(filter: Filter): Promise<number>
  /** Drops the whole collection (absent is fine): instant where a deleteMany of it would read every document. */
  drop(): Promise<void>
  createIndexes(indexes: IndexSpec[]): Promise<void>
  /**
   * Renames this collection to `target` in the same database, replacing `target` if it exists. MongoDB does it in one
   * command (renameCollection with dropTarget: readers see the old or the new collection, never none); FerretDB 1.24
   * does not implement dropTarget, so there the target is renamed aside first and, for a few milliseconds, is missing
   * (a writer may even create it again meanwhile: then that one goes aside too). A missing source fails with code 26
   * (NamespaceNotFound) and leaves the target alone.
   */
  renameTo(target: string): Promise<void>
  /** The names of its indexes, sorted (`_id_` included). */
  indexNames(): Promise<string[]>
}

export interface Store {
  collection<T extends Doc = Doc>(name: string): Collection<T>
  ping(): Promise<void>
  close(): Promise<void>
}

/**
 * Why an operation failed, which decides what the caller does (docs/failures.md):
 * - `unreachable`: no answer from the server (refused, reset, no server selected, a wedged client): nobody's fault
 *   but the server's; wait for it, however long.
 * - `timeout`: the server answers, but this operation ran out of time (our deadline, maxTimeMS): retry a few times.
 * - `conflict`: the collection was dropped or renamed under the operation (a replay's swap, an operator's drop): retry
 *   a few times; the retry meets the collection as it is now.
 * - `rejected`: the server refused a document for good (bad key, value it cannot store, too large).
 * - `unknown`: anything else. Not assumed to pass: the caller isolates the documents involved.
 */
export type StoreFailure = 'unreachable' | 'timeout' | 'conflict' | 'rejected' | 'unknown'

/** A failed operation, classified. `transient` (unreachable, timeout, conflict) may succeed on retry; the rest will not. */
export class StoreError extends Error {
  constructor(
    message: string,
    readonly kind: StoreFailure,
    readonly code?: number,
    /** Input positions of the documents that failed for good (for unordered writes); empty when the server did not say. */
    readonly failed: number[] = [],
    /** Input positions that were already stored (code 11000) in the same unordered write. */
    readonly duplicates: number[] = [],
    /** The server's message for each position in `failed`, when it gave one. */
    readonly reasons: string[] = [],
  ) {
    super(message)
    this.name = 'StoreError'
  }

  get transient(): boolean {
    return this.kind === 'unreachable' || this.kind === 'timeout' || this.kind === 'conflict'
  }
}

const DUPLICATE = 11000
export const NAMESPACE_NOT_FOUND = 26
const NAMESPACE_EXISTS = 48
const NOT_IMPLEMENTED = 238
/**
 * Renames into an existing target before a FerretDB swap gives up. Each races a writer that creates the target again
 * (measured: 2-3 against one writer every 5 ms, up to 12 against four writing flat out).
 */
const RENAME_ATTEMPTS = 50
/** Server codes that mean "not now" (shutdown in progress, not primary, …), not "never". */
const NOT_NOW = new Set([6, 7, 89, 91, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436])
/** MaxTimeMSExpired, ExceededTimeLimit. */
const TIME_LIMIT = new Set([50, 262])
/**
 * Server codes MongoDB uses for a document it will not store: BadValue, Overflow (nesting), InvalidBSON, dollar/dotted/
 * empty field names, too large, TypeMismatch, FailedToParse, InvalidLength, KeyTooLong, DocumentValidationFailure.
 */
const DOCUMENT_REJECTED = new Set([2, 9, 14, 15, 17, 22, 52, 56, 57, 10334, 17419, 17420, 17280, 121, 16755, 16837])
/**
 * FerretDB on PostgreSQL reports PostgreSQL's own errors as InternalError (code 1) with the SQLSTATE in the message,
 * for the whole command and without the document's position: class 22 (data exception: NUL in a string is 22P05) and
 * 54 (program limit: nesting too deep is 54001) are the document's fault; 08 (connection), 53 (resources), 57
 * (shutdown, cancel) and 40 (serialization, deadlock) pass; 42P01 (undefined_table) is a collection dropped or renamed
 * while the command ran (FerretDB had looked its table up before).
 */
function sqlstateFailure(message: string): StoreFailure | undefined {
  const state = /SQLSTATE ([0-9A-Z]{5})/.exec(message)?.[1]
  if (!state) return undefined
  const cls = state.slice(0, 2)
  if (cls === '22' || cls === '54') return 'rejected'
  if (state === '57014') return 'timeout'
  if (state === '42P01') return 'conflict'
  if (['08', '53', '57', '40'].includes(cls)) return 'unreachable'
  return 'unknown'
}

export function classify(error: unknown): StoreError {
  if (error instanceof StoreError) return error
  // A driver error inside a bulk write arrives wrapped, the original as its errorResponse.
  if (error instanceof MongoBulkWriteError && error.errorResponse instanceof Error) return classify(error.errorResponse)
  const e = error as { code?: number; message?: string }
  const message = e.message ?? String(error)
  const code = typeof e.code === 'number' ? e.code : undefined
  return new StoreError(message, failureOf(error, message, code), code)
}

function serverFailure(code: number | undefined, message: string): StoreFailure {
  if (code !== undefined && TIME_LIMIT.has(code)) return 'timeout'
  if (code !== undefined && NOT_NOW.has(code)) return 'unreachable'
  if (code !== undefined && DOCUMENT_REJECTED.has(code)) return 'rejected'
  return sqlstateFailure(message) ?? 'unknown'
}

function failureOf(error: unknown, message: string, code: number | undefined): StoreFailure {
  if (error instanceof MongoNetworkTimeoutError) return 'timeout'
  if (error instanceof MongoServerError) {
    return error.hasErrorLabel('RetryableWriteError') ? 'unreachable' : serverFailure(code, message)
  }
  // Network errors, server selection, a pool cleared or a client closed under us: the server did not answer.
  if (error instanceof MongoNetworkError) return 'unreachable'
  if (error instanceof MongoError) {
    const name = error.name
    if (/ServerSelection|PoolCleared|Topology|NotConnected|ServerClosed|Network/.test(name)) return 'unreachable'
    // Refused before sending: a document the driver cannot encode (NUL in a key, over 16 MiB).
    if (/InvalidArgument|BSON/.test(name)) return 'rejected'
    if (/Timeout/.test(name)) return 'timeout'
    return 'unknown'
  }
  // The BSON encoder's own errors (a key with NUL) and its recursion on absurd nesting: the document's fault.
  if (error instanceof RangeError || (error as Error)?.name === 'BSONError') return 'rejected'
  if (/ECONNREFUSED|ECONNRESET|EPIPE|ETIMEDOUT|socket|connection/i.test(message)) return 'unreachable'
  return 'unknown'
}

/**
 * The input positions that failed only as duplicates (code 11000) in an unordered write; any other failure throws a
 * classified StoreError.
 */
function duplicatesOf(error: unknown): number[] {
  if (!(error instanceof MongoBulkWriteError)) throw classify(error)
  const errors = (Array.isArray(error.writeErrors) ? error.writeErrors : [error.writeErrors]).filter((w) => w !== undefined)
  // No write errors: the command as a whole failed (a driver error, or FerretDB's InternalError for one document).
  if (errors.length === 0) throw classify(error)
  const failed = errors.filter((w) => w.code !== DUPLICATE)
  const duplicates = errors.filter((w) => w.code === DUPLICATE).map((w) => w.index)
  if (failed.length > 0) {
    const first = failed[0]!
    const kind = serverFailure(first.code, first.errmsg ?? '')
    // A write error names its document: unless it says "not now", that document is the problem.
    throw new StoreError(
      first.errmsg ?? 'write failed',
      kind === 'unknown' ? 'rejected' : kind,
      first.code,
      failed.map((w) => w.index),
      duplicates,
      failed.map((w) => w.errmsg ?? `code ${w.code}`),
    )
  }
  return duplicates
}

/**
 * Update statements per write command. FerretDB 1.24 (PostgreSQL backend) keeps one pooled PostgreSQL connection per
 * matched update statement until its whole `update` command ends, so a command with as many updates as its pool has
 * connections (50) waits for itself forever and wedges the server until it restarts. A few commands of this size in
 * flight at once stay well below that; on MongoDB it only costs a round trip per chunk.
 */
const UPDATES_PER_COMMAND = 8

/** Consecutive slices of `ops` (with their start position) holding at most UPDATES_PER_COMMAND updates each. */
function updateChunks(ops: WriteOp[]): [number, WriteOp[]][] {
  const out: [number, WriteOp[]][] = []
  let start = 0
  let updates = 0
  ops.forEach((op, i) => {
    if ('updateOne' in op && ++updates > UPDATES_PER_COMMAND) {
      out.push([start, ops.slice(start, i)])
      start = i
      updates = 1
    }
  })
  if (start < ops.length) out.push([start, ops.slice(start)])
  return out
}

export interface MongoOptions {
  url: string
  database: string
  /** Fail fast when the server is down, so callers can back off instead of hanging. */
  serverSelectionTimeoutMs?: number
  /** TLS and credentials (mongo.tls, mongo.username …), on top of what the URL says. */
  security?: MongoSecurity
  /**
   * The server-side time limit (maxTimeMS) of every operation, so that an operation the caller gave up on does not
   * keep running on the server (a scan left behind competes with every write). Default 25 s, below healingStore's.
   */
  maxTimeMs?: number
}

export async function connectMongo(options: MongoOptions): Promise<Store> {
  const maxTimeMS = options.maxTimeMs ?? 25_000
  const client = new MongoClient(options.url, {
    serverSelectionTimeoutMS: options.serverSelectionTimeoutMs ?? 5000,
    connectTimeoutMS: 5000,
    // A socket that stays silent past the server's own limit is a dead connection, not a slow operation.
    socketTimeoutMS: maxTimeMS + 10_000,
    retryWrites: false,
    maxPoolSize: 20,
    directConnection: !options.url.startsWith('mongodb+srv'),
    ...options.security,
  })
  await client.connect().catch((error) => {
    throw classify(error)
  })
  const db = client.db(options.database)
  const rethrow = (e: unknown): never => {
    throw classify(e)
  }
  const missingIsFine = (e: unknown) => {
    if ((e as { code?: number }).code !== NAMESPACE_NOT_FOUND) rethrow(e)
  }

  const collection = <T extends Doc>(name: string): Collection<T> => {
    const c = db.collection<Document>(name)
    return {
      async insertMany(docs) {
        if (docs.length === 0) return { inserted: 0, duplicates: [] }
        try {
          const r = await c.insertMany(docs as Document[], { ordered: false, maxTimeMS })
          return { inserted: r.insertedCount, duplicates: [] }
        } catch (error) {
          const duplicates = duplicatesOf(error)
          // Counted from the input, not insertedCount: some servers misreport it after partial failures.
          return { inserted: docs.length - duplicates.length, duplicates }
        }
      },
      async bulkWrite(ops) {
        const duplicates: number[] = []
        const failed: number[] = []
        let matched = 0
        let rejected: StoreError | undefined
        for (const [start, chunk] of updateChunks(ops)) {
          try {
            matched += (await c.bulkWrite(chunk as AnyBulkWriteOperation<Document>[], { ordered: false, maxTimeMS })).matchedCount
          } catch (error) {
            try {
              duplicates.push(...duplicatesOf(error).map((i) => start + i))
              matched += (error as MongoBulkWriteError).result.matchedCount
            } catch (e) {
              const failure = e as StoreError
              if (failure.transient) throw failure
              // Unordered: the other chunks still run; the positions that failed are reported together at the end.
              rejected ??= failure
              failed.push(...(failure.failed.length > 0 ? failure.failed : [...chunk.keys()]).map((i) => start + i))
            }
          }
        }
        if (rejected) throw new StoreError(rejected.message, rejected.kind, rejected.code, failed)
        return { duplicates, matched }
      },
      find: (filter, o = {}) => {
        let cursor = c.find(filter, { maxTimeMS, ...(o.projection ? { projection: o.projection } : {}) })
        if (o.sort) cursor = cursor.sort(o.sort)
        if (o.skip) cursor = cursor.skip(o.skip)
        if (o.limit) cursor = cursor.limit(o.limit)
        return cursor.toArray().catch(rethrow) as unknown as Promise<T[]>
      },
      findOne: (filter) => c.findOne(filter, { maxTimeMS }).catch(rethrow) as unknown as Promise<T | null>,
      // No time limit: a maintenance pass over a whole collection may run for long.
      async *scan(filter, o) {
        const cursor = c.find(filter, { batchSize: o.batchSize, ...(o.projection ? { projection: o.projection } : {}) })
        try {
          let batch: T[] = []
          for await (const doc of cursor) {
            batch.push(doc as unknown as T)
            if (batch.length >= o.batchSize) {
              yield batch
              batch = []
            }
          }
          if (batch.length > 0) yield batch
        } catch (e) {
          rethrow(e)
        } finally {
          await cursor.close().catch(() => {})
        }
      },
      count: (filter = {}) => c.countDocuments(filter, { maxTimeMS }).catch(rethrow),
      deleteMany: async (filter) => (await c.deleteMany(filter, { maxTimeMS }).catch(rethrow)).deletedCount,
      async drop() {
        // Nothing to drop: MongoDB before 7 reports it, 7+ answers ok.
        await c.drop({ maxTimeMS }).catch(missingIsFine)
      },
      async createIndexes(indexes) {
        await c
          .createIndexes(
            indexes.map((i) => ({ key: i.key, name: i.name, unique: i.unique ?? false })),
            { maxTimeMS },
          )
          .catch(rethrow)
      },
      async renameTo(target) {
        try {
          await c.rename(target, { dropTarget: true })
          return
        } catch (error) {
          if ((error as { code?: number }).code !== NOT_IMPLEMENTED) rethrow(error)
        }
        // No dropTarget (FerretDB 1.24): the target is renamed aside, not dropped (a writer that has looked its table up
        // still finds it; a drop fails it), and this one renamed into its place. A writer may create the target again in
        // between (an insert creates a missing collection): that one goes aside too. Rename first, so a missing source
        // fails before the target is touched.
        const aside: string[] = []
        for (let attempt = 1; ; attempt++) {
          try {
            await c.rename(target)
            break
          } catch (error) {
            if ((error as { code?: number }).code !== NAMESPACE_EXISTS || attempt >= RENAME_ATTEMPTS) rethrow(error)
          }
          const name = `${target}__replaced${attempt}`
          await db.dropCollection(name).catch(missingIsFine)
          await db.renameCollection(target, name).catch(missingIsFine)
          aside.push(name)
        }
        for (const name of aside) await db.dropCollection(name).catch(missingIsFine)
      },
      async indexNames() {
        return (await c.listIndexes({ maxTimeMS }).toArray().catch(rethrow)).map((i) => String(i.name)).sort()
      },
    }
  }

  return {
    collection,
    ping: async () => {
      await db.command({ ping: 1 }).catch(rethrow)
    },
    close: () => client.close(),
  }
}

export interface HealingOptions {
  /** Client-side bound of every operation (default 30 s): beyond it the caller gets a `timeout` StoreError. */
  operationTimeoutMs?: number
  /** How long the health probe after a timeout may take before the client counts as wedged (default 5 s). */
  probeTimeoutMs?: number
}

interface Client {
  store: Promise<Store>
  /** Operations in flight on it: a retired client is closed only once they are done, never under them. */
  busy: number
  retired: boolean
  probe?: Promise<boolean>
}

/**
 * A Store shared by every role of a process that replaces its client when the server stops answering it. Under Bun
 * the driver's server monitor stops once the server went away (no heartbeat ever again), and an operation on a
 * connection whose server restarted can hang forever: so every operation is bounded in time, and a client that does not
 * answer a ping any more is replaced by a new one. The old client is closed only after its last operation ended, so
 * one slow or failed operation never aborts the others in flight (a timeout alone replaces nothing).
 */
export function healingStore(open: () => Promise<Store>, options: HealingOptions = {}): Store {
  const timeoutMs = options.operationTimeoutMs ?? 30_000
  const probeMs = options.probeTimeoutMs ?? 5_000
  let current: Client | undefined

  const closeIfIdle = (client: Client) => {
    if (client.retired && client.busy === 0) void client.store.then((s) => s.close()).catch(() => {})
  }
  const retire = (client: Client) => {
    if (current === client) current = undefined
    client.retired = true
    closeIfIdle(client)
  }
  const acquire = (): Client => {
    if (!current) {
      const client: Client = { store: open(), busy: 0, retired: false }
      client.store.catch(() => {
        if (current === client) current = undefined
      })
      current = client
    }
    return current
  }
  const within = <R>(work: Promise<R>, ms: number, what: string): Promise<R> => {
    let timer: ReturnType<typeof setTimeout> | undefined
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new StoreError(`${what} timed out after ${ms} ms`, 'timeout')), ms)
    })
    return Promise.race([work, deadline]).finally(() => clearTimeout(timer))
  }
  /** Whether the client still gets an answer from the server; one probe at a time per client. */
  const answers = (client: Client): Promise<boolean> =>
    (client.probe ??= within(
      client.store.then((s) => s.ping()),
      probeMs,
      'ping',
    ).then(
      () => true,
      () => false,
    ).finally(() => setTimeout(() => (client.probe = undefined), 1000)))

  const guard = async <R>(fn: (store: Store) => Promise<R>, what: string): Promise<R> => {
    const client = acquire()
    client.busy++
    try {
      const store = await client.store.catch((error) => {
        throw classify(error)
      })
      // A write that still lands after the deadline is harmless (writes are idempotent or version-guarded), and the
      // server's own limit (maxTimeMS) ends the operation there too.
      return await within(fn(store), timeoutMs, what)
    } catch (error) {
      const e = classify(error)
      if (e.kind === 'unreachable') retire(client)
      // A timeout is this operation's: the client is replaced only when it cannot even ping any more (wedged).
      else if (e.kind === 'timeout' && !client.retired && !(await answers(client))) {
        retire(client)
        throw new StoreError(`${e.message}; the server does not answer a ping either`, 'unreachable', e.code)
      }
      throw e
    } finally {
      client.busy--
      closeIfIdle(client)
    }
  }
  return {
    collection: <T extends Doc>(name: string): Collection<T> => ({
      insertMany: (docs) => guard((s) => s.collection<T>(name).insertMany(docs), `insertMany ${name}`),
      bulkWrite: (ops) => guard((s) => s.collection<T>(name).bulkWrite(ops), `bulkWrite ${name}`),
      find: (filter, options) => guard((s) => s.collection<T>(name).find(filter, options), `find ${name}`),
      findOne: (filter) => guard((s) => s.collection<T>(name).findOne(filter), `findOne ${name}`),
      // Not bounded by the operation timeout (a scan may run for long); a failure ends it, classified.
      async *scan(filter, options) {
        const client = acquire()
        client.busy++
        try {
          const store = await client.store.catch((error) => {
            throw classify(error)
          })
          yield* store.collection<T>(name).scan(filter, options)
        } finally {
          client.busy--
          closeIfIdle(client)
        }
      },
      count: (filter) => guard((s) => s.collection<T>(name).count(filter), `count ${name}`),
      deleteMany: (filter) => guard((s) => s.collection<T>(name).deleteMany(filter), `deleteMany ${name}`),
      drop: () => guard((s) => s.collection<T>(name).drop(), `drop ${name}`),
      createIndexes: (indexes) => guard((s) => s.collection<T>(name).createIndexes(indexes), `createIndexes ${name}`),
      renameTo: (target) => guard((s) => s.collection<T>(name).renameTo(target), `renameTo ${name}`),
      indexNames: () => guard((s) => s.collection<T>(name).indexNames(), `indexNames ${name}`),
    }),
    ping: () => guard((s) => s.ping(), 'ping'),
    close: async () => {
      const client = current
      current = undefined
      if (client) await (await client.store.catch(() => undefined))?.close()
    },
  }
}
