// The only module that imports the mongodb driver. It stays inside the subset that real MongoDB 7/8 and FerretDB share
// (see DESIGN.md): no transactions, sessions or change streams; duplicates are recognised by code 11000 only.
import { MongoBulkWriteError, MongoClient, MongoServerError, type AnyBulkWriteOperation, type Document } from 'mongodb'

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
  count(filter?: Filter): Promise<number>
  deleteMany(filter: Filter): Promise<number>
  createIndexes(indexes: IndexSpec[]): Promise<void>
}

export interface Store {
  collection<T extends Doc = Doc>(name: string): Collection<T>
  ping(): Promise<void>
  close(): Promise<void>
}

/**
 * A failed write, classified: `transient` (server unreachable, timeout, not primary) may succeed on retry;
 * anything else is permanent for this document.
 */
export class StoreError extends Error {
  constructor(
    message: string,
    readonly transient: boolean,
    readonly code?: number,
    /** Input positions of the documents that failed for good (for unordered writes). */
    readonly failed: number[] = [],
  ) {
    super(message)
    this.name = 'StoreError'
  }
}

const DUPLICATE = 11000

function classify(error: unknown): StoreError {
  if (error instanceof StoreError) return error
  const e = error as { code?: number; message?: string }
  // Network/selection errors are not server errors; these server codes mean "not now" (shutdown, not primary, …).
  const transient =
    !(error instanceof MongoServerError) ||
    error.hasErrorLabel('RetryableWriteError') ||
    [6, 7, 89, 91, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436].includes(e.code ?? -1)
  return new StoreError(e.message ?? String(error), transient, e.code)
}

/**
 * The input positions that failed only as duplicates (code 11000) in an unordered write; any other failure throws a
 * classified StoreError.
 */
function duplicatesOf(error: unknown): number[] {
  if (!(error instanceof MongoBulkWriteError)) throw classify(error)
  const errors = (Array.isArray(error.writeErrors) ? error.writeErrors : [error.writeErrors]).filter((w) => w !== undefined)
  // A connection lost mid-write also arrives as a bulk error, with no write errors: nothing is known written.
  if (errors.length === 0) throw new StoreError(error.message, true, error.code as number | undefined)
  const failed = errors.filter((w) => w.code !== DUPLICATE)
  if (failed.length > 0) {
    throw new StoreError(failed[0]!.errmsg ?? 'write failed', false, failed[0]!.code, failed.map((w) => w.index))
  }
  return errors.map((w) => w.index)
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
}

export async function connectMongo(options: MongoOptions): Promise<Store> {
  const client = new MongoClient(options.url, {
    serverSelectionTimeoutMS: options.serverSelectionTimeoutMs ?? 5000,
    connectTimeoutMS: 5000,
    socketTimeoutMS: 30_000,
    retryWrites: false,
    maxPoolSize: 20,
    directConnection: !options.url.startsWith('mongodb+srv'),
  })
  await client.connect().catch((error) => {
    throw classify(error)
  })
  const db = client.db(options.database)

  const collection = <T extends Doc>(name: string): Collection<T> => {
    const c = db.collection<Document>(name)
    return {
      async insertMany(docs) {
        if (docs.length === 0) return { inserted: 0, duplicates: [] }
        try {
          const r = await c.insertMany(docs as Document[], { ordered: false })
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
            matched += (await c.bulkWrite(chunk as AnyBulkWriteOperation<Document>[], { ordered: false })).matchedCount
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
        if (rejected) throw new StoreError(rejected.message, false, rejected.code, failed)
        return { duplicates, matched }
      },
      find: (filter, o = {}) => {
        let cursor = c.find(filter, o.projection ? { projection: o.projection } : {})
        if (o.sort) cursor = cursor.sort(o.sort)
        if (o.skip) cursor = cursor.skip(o.skip)
        if (o.limit) cursor = cursor.limit(o.limit)
        return cursor.toArray().catch((e) => {
          throw classify(e)
        }) as unknown as Promise<T[]>
      },
      findOne: (filter) =>
        c.findOne(filter).catch((e) => {
          throw classify(e)
        }) as unknown as Promise<T | null>,
      count: (filter = {}) =>
        c.countDocuments(filter).catch((e) => {
          throw classify(e)
        }),
      deleteMany: async (filter) => (await c.deleteMany(filter)).deletedCount,
      async createIndexes(indexes) {
        await c.createIndexes(indexes.map((i) => ({ key: i.key, name: i.name, unique: i.unique ?? false })))
      },
    }
  }

  return {
    collection,
    ping: async () => {
      await db.command({ ping: 1 }).catch((e) => {
        throw classify(e)
      })
    },
    close: () => client.close(),
  }
}

/**
 * A Store that replaces its client after a transient failure. Under Bun the driver's server monitor stops once the
 * server went away (no heartbeat ever again), so an existing client never sees the server come back; a new one does.
 */
const OPERATION_TIMEOUT_MS = 30_000

export function healingStore(open: () => Promise<Store>): Store {
  let current: Promise<Store> | undefined
  const get = () =>
    (current ??= open().catch((error) => {
      current = undefined
      throw classify(error)
    }))
  const guard = async <R>(fn: (store: Store) => Promise<R>, what: string): Promise<R> => {
    const used = get()
    const store = await used
    let timer: ReturnType<typeof setTimeout> | undefined
    // Under Bun an operation on a connection whose server restarted can hang forever: bound it, then replace the
    // client. A write that still lands later is harmless (writes are idempotent or version-guarded).
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new StoreError(`${what} timed out after ${OPERATION_TIMEOUT_MS} ms`, true)), OPERATION_TIMEOUT_MS)
    })
    try {
      return await Promise.race([fn(store), deadline])
    } catch (error) {
      const e = classify(error)
      if (e.transient && current === used) {
        current = undefined
        void store.close().catch(() => {})
      }
      throw e
    } finally {
      clearTimeout(timer)
    }
  }
  return {
    collection: <T extends Doc>(name: string): Collection<T> => ({
      insertMany: (docs) => guard((s) => s.collection<T>(name).insertMany(docs), `insertMany ${name}`),
      bulkWrite: (ops) => guard((s) => s.collection<T>(name).bulkWrite(ops), `bulkWrite ${name}`),
      find: (filter, options) => guard((s) => s.collection<T>(name).find(filter, options), `find ${name}`),
      findOne: (filter) => guard((s) => s.collection<T>(name).findOne(filter), `findOne ${name}`),
      count: (filter) => guard((s) => s.collection<T>(name).count(filter), `count ${name}`),
      deleteMany: (filter) => guard((s) => s.collection<T>(name).deleteMany(filter), `deleteMany ${name}`),
      createIndexes: (indexes) => guard((s) => s.collection<T>(name).createIndexes(indexes), `createIndexes ${name}`),
    }),
    ping: () => guard((s) => s.ping(), 'ping'),
    close: async () => {
      const open = current
      current = undefined
      if (open) await (await open.catch(() => undefined))?.close()
    },
  }
}
