// Every API write runs in one transaction that first tells the capture trigger who is writing and why.
import type { Context } from 'hono'
import type { Db } from '../clients/postgres.ts'
import setWriteContext from '../../sql/api/set-write-context.sql' with { type: 'text' }
import { REQUEST_ID } from './middleware/request-context.ts'
import { ApiError } from './problem.ts'
import type { AppDeps, AppEnv } from './env.ts'

const MAX_ACTOR = 200
const MAX_REASON = 10_000

export interface WriteContext {
  actor: string
  reason: string | null
  correlationId: string
  /** X-Causation-Id: the command or event that caused this write (stored as the events' causationId). */
  causationId: string | null
}

/** The authenticated principal wins; X-Actor is only trusted when the API is open (no tokens configured). */
export function writeContext(c: Context<AppEnv>): WriteContext {
  const principal = c.get('principal')
  const actor = principal?.name ?? headerText(c, 'x-actor', MAX_ACTOR) ?? 'anonymous'
  return { actor, reason: headerText(c, 'x-reason', MAX_REASON), correlationId: c.get('requestId'), causationId: causationId(c) }
}

/** Same alphabet and bound as X-Request-Id; a bad one is refused rather than replaced (it names another message). */
function causationId(c: Context<AppEnv>): string | null {
  const raw = c.req.header('x-causation-id')
  if (raw === undefined) return null
  if (!REQUEST_ID.test(raw)) {
    throw new ApiError(400, 'validation', 'header x-causation-id is invalid', [
      { path: 'headers.x-causation-id', message: '1 to 200 characters of A-Z a-z 0-9 . _ : @ / + = -' },
    ])
  }
  return raw
}

const utf8 = new TextDecoder('utf-8', { fatal: true })

/** Header bytes arrive as Latin-1 characters; clients send UTF-8 (X-Reason: Müller), so decode it when it is UTF-8. */
function fromHeaderBytes(raw: string): string {
  if (!/[\u0080-\u00ff]/.test(raw)) return raw
  try {
    return utf8.decode(Buffer.from(raw, 'latin1'))
  } catch {
    return raw
  }
}

function headerText(c: Context<AppEnv>, name: string, max: number): string | null {
  const raw = c.req.header(name)?.trim()
  if (!raw) return null
  const value = fromHeaderBytes(raw)
  if (value.length > max || /[\u0000-\u001f\u007f]/.test(value)) {
    throw new ApiError(400, 'validation', `header ${name} is invalid`, [
      { path: `headers.${name}`, message: `at most ${max} printable characters` },
    ])
  }
  return value
}

export function inWriteTransaction<T>(deps: AppDeps, c: Context<AppEnv>, fn: (tx: Db) => Promise<T>): Promise<T> {
  const who = writeContext(c)
  return deps.db().begin(async (tx) => {
    await tx.query(setWriteContext, [who.actor, who.reason ?? '', who.correlationId, who.causationId ?? ''])
    return fn(tx)
  })
}
