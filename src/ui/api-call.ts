// The console reads and acts through the API in-process: same validation, same roles, same problem documents. The
// viewer's token travels as the bearer token and the console request's id as X-Request-Id, so the API's access log
// ties each call to the page that made it.
import type { Context } from 'hono'
import type { ConsoleDeps, ConsoleEnv } from './env.ts'

export interface Problem {
  status: number
  detail: string
  errors?: { path: string; message: string }[]
}

export type ApiResult<T> = { ok: true; body: T } | { ok: false; problem: Problem }

export async function callApi<T>(deps: ConsoleDeps, c: Context<ConsoleEnv>, method: 'GET' | 'POST', path: string, body?: unknown): Promise<ApiResult<T>> {
  const headers: Record<string, string> = { 'x-request-id': c.get('requestId') }
  const token = c.get('token')
  if (token) headers.authorization = `Bearer ${token}`
  const principal = c.get('principal')
  if (principal) headers['x-actor'] = principal.name
  if (body !== undefined) headers['content-type'] = 'application/json'
  const res = await deps.api(path, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) })
  const text = await res.text()
  let parsed: unknown = null
  try {
    parsed = text ? JSON.parse(text) : null
  } catch {}
  if (res.ok) return { ok: true, body: parsed as T }
  const p = (parsed ?? {}) as { detail?: unknown; errors?: Problem['errors'] }
  return {
    ok: false,
    problem: { status: res.status, detail: typeof p.detail === 'string' ? p.detail : `HTTP ${res.status}`, ...(p.errors ? { errors: p.errors } : {}) },
  }
}

/** A query string from the given non-empty values. */
export function qs(values: Record<string, string | number | undefined | null>): string {
  const params = new URLSearchParams()
  for (const [k, v] of Object.entries(values)) if (v !== undefined && v !== null && v !== '') params.set(k, String(v))
  const s = params.toString()
  return s ? `?${s}` : ''
}
