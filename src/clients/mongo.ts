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
  /** Unordered bulk write; per-operation duplicate errors are reported, anything else throws `StoreError`. */
  bulkWrite(ops: WriteOp[]): Promise<{ duplicates: number[] }>
  find(filter: Filter, options?: FindOptions): Promise<T[]>
  findOne(filter: Filter): Promise<T | null>
  count(filter?: Filter): Promise<number>
  aggregate<R = Doc>(pipeline: Doc[]): Promise<R[]>
  deleteMany(filter: Filter): Promise<number>
  createIndexes(indexes: IndexSpec[]): Promise<void>
  drop(): Promise<void>
}

export interface Store {
  collection<T extends Doc = Doc>(name: string): Collection<T>
  listCollections(): Promise<string[]>
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
        if (ops.length === 0) return { duplicates: [] }
        try {
          await c.bulkWrite(ops as AnyBulkWriteOperation<Document>[], { ordered: false })
          return { duplicates: [] }
        } catch (error) {
          return { duplicates: duplicatesOf(error) }
        }
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
      aggregate: <R>(pipeline: Doc[]) =>
        c
          .aggregate(pipeline)
          .toArray()
          .catch((e) => {
            throw classify(e)
          }) as Promise<R[]>,
      deleteMany: async (filter) => (await c.deleteMany(filter)).deletedCount,
      async createIndexes(indexes) {
        await c.createIndexes(indexes.map((i) => ({ key: i.key, name: i.name, unique: i.unique ?? false })))
      },
      drop: async () => {
        await c.drop().catch(() => {})
      },
    }
  }

  return {
    collection,
    listCollections: async () => (await db.listCollections({}, { nameOnly: true }).toArray()).map((c) => c.name),
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
  const guard = async <R>(fn: (store: Store) => Promise<R>): Promise<R> => {
    const used = get()
    const store = await used
    let timer: ReturnType<typeof setTimeout> | undefined
    // Under Bun an operation on a connection whose server restarted can hang forever: bound it, then replace the
    // client. A write that still lands later is harmless (writes are idempotent or version-guarded).
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new StoreError(`operation timed out after ${OPERATION_TIMEOUT_MS} ms`, true)), OPERATION_TIMEOUT_MS)
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
      insertMany: (docs) => guard((s) => s.collection<T>(name).insertMany(docs)),
      bulkWrite: (ops) => guard((s) => s.collection<T>(name).bulkWrite(ops)),
      find: (filter, options) => guard((s) => s.collection<T>(name).find(filter, options)),
      findOne: (filter) => guard((s) => s.collection<T>(name).findOne(filter)),
      count: (filter) => guard((s) => s.collection<T>(name).count(filter)),
      aggregate: <R>(pipeline: Doc[]) => guard((s) => s.collection<T>(name).aggregate<R>(pipeline)),
      deleteMany: (filter) => guard((s) => s.collection<T>(name).deleteMany(filter)),
      createIndexes: (indexes) => guard((s) => s.collection<T>(name).createIndexes(indexes)),
      drop: () => guard((s) => s.collection<T>(name).drop()),
    }),
    listCollections: () => guard((s) => s.listCollections()),
    ping: () => guard((s) => s.ping()),
    close: async () => {
      const open = current
      current = undefined
      if (open) await (await open.catch(() => undefined))?.close()
    },
  }
}
