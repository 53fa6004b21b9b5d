// Bearer tokens from http.tokens (name, sha256 hex, role). The presented token is hashed and compared with every
// configured digest in constant time, so neither the token nor which entry matched leaks through timing.
// Roles nest: read (GET) < write (+ writes) < admin (+ DLQ and redrive).
import type { MiddlewareHandler } from 'hono'
import { createHash, timingSafeEqual } from 'node:crypto'
import type { Config } from '../../config.ts'
import { ApiError } from '../problem.ts'
import type { AccessRole, AppEnv, Principal } from '../env.ts'

const RANK: Record<AccessRole, number> = { read: 1, write: 2, admin: 3 }

/** Paths anyone may call: liveness, readiness and the API description. */
const PUBLIC = new Set(['/healthz', '/readyz', '/openapi.json'])

export function requiredRole(method: string, path: string): AccessRole | null {
  if (PUBLIC.has(path)) return null
  if (path === '/dlq' || path.startsWith('/dlq/')) return 'admin'
  return method === 'GET' || method === 'HEAD' || method === 'OPTIONS' ? 'read' : 'write'
}

export function authenticate(tokens: Config['http']['tokens'], header: string | undefined): Principal | null {
  const match = /^Bearer ([\x21-\x7e]{1,1000})$/.exec(header ?? '')
  if (!match) return null
  const digest = createHash('sha256').update(match[1]!).digest()
  let found: Principal | null = null
  for (const token of tokens) {
    if (timingSafeEqual(digest, Buffer.from(token.sha256, 'hex')) && !found) found = { name: token.name, role: token.role }
  }
  return found
}

export function auth(tokens: Config['http']['tokens']): MiddlewareHandler<AppEnv> {
  return async function auth(c, next) {
    const needed = requiredRole(c.req.method, c.req.path)
    // No tokens configured: the API is open (serve refuses to bind beyond loopback unless allowed).
    if (tokens.length === 0 || needed === null || c.req.method === 'OPTIONS') return next()
    const principal = authenticate(tokens, c.req.header('authorization'))
    if (!principal) {
      throw new ApiError(401, 'unauthorized', 'a valid bearer token is required', undefined, { 'WWW-Authenticate': 'Bearer' })
    }
    c.set('principal', principal)
    if (RANK[principal.role] < RANK[needed]) {
      throw new ApiError(403, 'forbidden', `this needs the ${needed} role; the token has ${principal.role}`)
    }
    await next()
  }
}
