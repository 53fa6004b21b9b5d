// Decoding of the logical replication stream (CopyData payloads) and the pgoutput protocol v1, and the standby status
// update we send back. Pure functions over Buffers; see PostgreSQL's "Logical Replication Message Formats".

/** Microseconds between the Unix epoch and PostgreSQL's epoch (2000-01-01). */
const PG_EPOCH_MICROS = 946_684_800_000_000n

export type StreamMessage =
  | { kind: 'xlog'; start: bigint; walEnd: bigint; body: Buffer }
  | { kind: 'keepalive'; walEnd: bigint; replyRequested: boolean }

export function parseStream(chunk: Buffer): StreamMessage | undefined {
  if (chunk[0] === 0x77 /* w */) {
    return { kind: 'xlog', start: chunk.readBigUInt64BE(1), walEnd: chunk.readBigUInt64BE(9), body: chunk.subarray(25) }
  }
  if (chunk[0] === 0x6b /* k */) {
    return { kind: 'keepalive', walEnd: chunk.readBigUInt64BE(1), replyRequested: chunk[17] === 1 }
  }
  return undefined
}

export interface Relation {
  id: number
  schema: string
  table: string
  columns: string[]
  /** Per column: part of the replica identity (the key an UPDATE/DELETE old tuple carries). */
  key: boolean[]
  /** Per column: type oid (json/jsonb values are JSON text, the rest the type's text output). */
  types: number[]
}

/**
 * One tuple's column values in the relation's column order: the type's text output, null for SQL NULL, `undefined`
 * for an unchanged TOASTed value the server did not send ('u', only in UPDATE new tuples).
 */
export type Tuple = (string | null | undefined)[]

export type PgOutput =
  | { tag: 'begin'; finalLsn: bigint; commitTime: Date; xid: number }
  | { tag: 'commit'; commitLsn: bigint; endLsn: bigint; commitTime: Date }
  | { tag: 'relation'; relation: Relation }
  | { tag: 'insert'; relationId: number; values: Tuple }
  /** `old`: the replica identity's columns ('K', only when the key changed) or the whole row ('O', FULL); else absent. */
  | { tag: 'update'; relationId: number; old?: Tuple; full?: boolean; values: Tuple }
  /** `full`: `old` is the whole row (REPLICA IDENTITY FULL), else only its identity columns are set. */
  | { tag: 'delete'; relationId: number; old: Tuple; full: boolean }
  | { tag: 'truncate'; relationIds: number[]; cascade: boolean; restartIdentity: boolean }
  | { tag: 'message'; transactional: boolean; lsn: bigint; prefix: string; content: Buffer }
  | { tag: 'other'; code: string }

class Reader {
  offset = 0
  constructor(private readonly b: Buffer) {}
  u8() {
    return this.b.readUInt8(this.offset++)
  }
  i16() {
    const v = this.b.readInt16BE(this.offset)
    this.offset += 2
    return v
  }
  i32() {
    const v = this.b.readInt32BE(this.offset)
    this.offset += 4
    return v
  }
  u64() {
    const v = this.b.readBigUInt64BE(this.offset)
    this.offset += 8
    return v
  }
  time() {
    return new Date(Number((this.b.readBigInt64BE((this.offset += 8) - 8) + PG_EPOCH_MICROS) / 1000n))
  }
  cstring() {
    const end = this.b.indexOf(0, this.offset)
    const s = this.b.toString('utf8', this.offset, end)
    this.offset = end + 1
    return s
  }
  bytes(n: number) {
    const v = this.b.subarray(this.offset, this.offset + n)
    this.offset += n
    return v
  }
}

export function parsePgOutput(body: Buffer): PgOutput {
  const r = new Reader(body)
  const code = String.fromCharCode(r.u8())
  switch (code) {
    case 'B':
      return { tag: 'begin', finalLsn: r.u64(), commitTime: r.time(), xid: r.i32() }
    case 'C': {
      r.u8() // flags, unused
      return { tag: 'commit', commitLsn: r.u64(), endLsn: r.u64(), commitTime: r.time() }
    }
    case 'R': {
      const id = r.i32()
      const schema = r.cstring()
      const table = r.cstring()
      r.u8() // replica identity
      const n = r.i16()
      const columns: string[] = []
      const key: boolean[] = []
      const types: number[] = []
      for (let i = 0; i < n; i++) {
        key.push((r.u8() & 1) === 1)
        columns.push(r.cstring())
        types.push(r.i32())
        r.i32() // type modifier
      }
      return { tag: 'relation', relation: { id, schema, table, columns, key, types } }
    }
    case 'I': {
      const relationId = r.i32()
      r.u8() // 'N': new tuple
      return { tag: 'insert', relationId, values: readTuple(r) }
    }
    case 'U': {
      const relationId = r.i32()
      const kind = String.fromCharCode(r.u8())
      if (kind === 'K' || kind === 'O') {
        const old = readTuple(r)
        r.u8() // 'N'
        return { tag: 'update', relationId, old, full: kind === 'O', values: readTuple(r) }
      }
      return { tag: 'update', relationId, values: readTuple(r) }
    }
    case 'D': {
      const relationId = r.i32()
      const full = String.fromCharCode(r.u8()) === 'O'
      return { tag: 'delete', relationId, old: readTuple(r), full }
    }
    case 'T': {
      const n = r.i32()
      const options = r.u8()
      const relationIds: number[] = []
      for (let i = 0; i < n; i++) relationIds.push(r.i32())
      return { tag: 'truncate', relationIds, cascade: (options & 1) === 1, restartIdentity: (options & 2) === 2 }
    }
    case 'M': {
      const transactional = (r.u8() & 1) === 1
      const lsn = r.u64()
      const prefix = r.cstring()
      const content = r.bytes(r.i32())
      return { tag: 'message', transactional, lsn, prefix, content }
    }
    default:
      return { tag: 'other', code }
  }
}

function readTuple(r: Reader): Tuple {
  const n = r.i16()
  const values: Tuple = []
  for (let i = 0; i < n; i++) {
    const kind = String.fromCharCode(r.u8())
    if (kind === 't') values.push(r.bytes(r.i32()).toString('utf8'))
    else values.push(kind === 'u' ? undefined : null) // 'n' null, 'u' unchanged TOAST (UPDATE new tuples only)
  }
  return values
}

/** Standby status update: what we wrote, flushed and applied. The server may discard WAL up to `flushed`. */
export function statusUpdate(flushed: bigint, replyRequested = false): Buffer {
  const b = Buffer.alloc(34)
  b[0] = 0x72 // r
  b.writeBigUInt64BE(flushed, 1)
  b.writeBigUInt64BE(flushed, 9)
  b.writeBigUInt64BE(flushed, 17)
  b.writeBigInt64BE(BigInt(Date.now()) * 1000n - PG_EPOCH_MICROS, 25)
  b[33] = replyRequested ? 1 : 0
  return b
}

export function formatLsn(lsn: bigint): string {
  return `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffffffffn).toString(16).toUpperCase()}`
}
