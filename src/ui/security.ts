// Console sessions and their protection. A browser gets a random session id cookie on its first visit; signing in
// stores the bearer token in a second cookie. Both are HttpOnly and SameSite=Strict (scripts cannot read them, other
// sites cannot send them). The CSRF token of a session is an HMAC of its id under a per-process key: forms carry it in
// a hidden field, and every POST must present it and come from our own origin (OWASP synchronizer token + origin
// check). Every response gets a strict Content-Security-Policy: scripts and styles only from /ui/assets.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import type { Context, MiddlewareHandler } from 'hono'
import { deleteCookie, getCookie, setCookie } from 'hono/cookie'
import type { Config } from '../config.ts'
import { authenticate } from '../api/middleware/auth.ts'
import { allowedHosts, hostnameOf } from '../api/middleware/host-check.ts'
import type { ConsoleEnv } from './env.ts'

export const SESSION_COOKIE = 'cdc_console_sid'
export const TOKEN_COOKIE = 'cdc_console_token'
export const CSRF_FIELD = '_csrf'
const COOKIE_PATH = '/ui'
const SESSION_ID = /^[A-Za-z0-9_-]{43}$/

/** A restart invalidates open forms (they are re-rendered with a new token), never sessions' safety. */
const key = randomBytes(32)

export const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "form-action 'self'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
].join('; ')

export function securityHeaders(): MiddlewareHandler<ConsoleEnv> {
  return async function securityHeaders(c, next) {
    await next()
    c.header('Content-Security-Policy', CSP)
    c.header('X-Content-Type-Options', 'nosniff')
    c.header('X-Frame-Options', 'DENY')
    c.header('Referrer-Policy', 'same-origin')
    if (!c.req.path.startsWith('/ui/assets/')) c.header('Cache-Control', 'no-store')
  }
}

const csrfOf = (sid: string) => createHmac('sha256', key).update(sid).digest('base64url')

function cookieOptions(c: Context) {
  return { path: COOKIE_PATH, httpOnly: true, sameSite: 'Strict' as const, secure: new URL(c.req.url).protocol === 'https:' }
}

/**
 * Sets `csrf`, `token`, `access` and the principal. Pages that need a sign-in redirect there; POSTs are checked for
 * origin and CSRF token before any handler runs.
 */
export function session(http: Config['http']): MiddlewareHandler<ConsoleEnv> {
  const { tokens } = http
  const allowed = allowedHosts(http)
  return async function session(c, next) {
    let sid = getCookie(c, SESSION_COOKIE)
    if (!sid || !SESSION_ID.test(sid)) {
      sid = randomBytes(32).toString('base64url')
      setCookie(c, SESSION_COOKIE, sid, cookieOptions(c))
    }
    c.set('csrf', csrfOf(sid))
    if (c.req.method === 'POST') {
      const refusal = await checkPost(c, allowed)
      if (refusal) return c.text(refusal, 403)
    }
    const token = getCookie(c, TOKEN_COOKIE) ?? null
    if (tokens.length === 0) {
      c.set('token', null)
      c.set('access', 'open')
      return next()
    }
    const principal = token ? authenticate(tokens, `Bearer ${token}`) : null
    c.set('token', principal ? token : null)
    c.set('access', principal?.role ?? 'read')
    if (principal) c.set('principal', principal)
    if (!principal && c.req.path !== '/ui/sign-in') {
      const nextPath = c.req.method === 'GET' ? c.req.path + new URL(c.req.url).search : '/ui'
      return c.redirect(`/ui/sign-in?next=${encodeURIComponent(nextPath)}`, 303)
    }
    return next()
  }
}

/**
 * The form's origin (Origin, or Referer when a browser sends none) must be a name on the Host allow-list — never just
 * equal to the request's own Host, which a DNS-rebinding page controls — and the same host:port as the request; then
 * the session's CSRF token must match. A reason when refused.
 */
async function checkPost(c: Context<ConsoleEnv>, allowed: (hostname: string) => boolean): Promise<string | null> {
  const host = new URL(c.req.url).host
  const source = c.req.header('origin') ?? c.req.header('referer')
  let origin: URL | null = null
  try {
    origin = source ? new URL(source) : null
  } catch {}
  const originName = origin && (origin.protocol === 'http:' || origin.protocol === 'https:') ? hostnameOf(origin.host) : null
  if (!originName || !allowed(originName) || origin!.host !== host) return 'refused: this form was not sent from the console (origin check)'
  const type = c.req.header('content-type')?.split(';')[0]?.trim().toLowerCase()
  if (type !== 'application/x-www-form-urlencoded' && type !== 'multipart/form-data') return 'refused: expected a form'
  const form = await c.req.parseBody()
  const given = typeof form[CSRF_FIELD] === 'string' ? Buffer.from(form[CSRF_FIELD]) : Buffer.alloc(0)
  const expected = Buffer.from(c.get('csrf'))
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
    return 'refused: the form is stale or forged (CSRF token mismatch); reload the page and try again'
  }
  return null
}

export function signIn(c: Context, token: string) {
  setCookie(c, TOKEN_COOKIE, token, cookieOptions(c))
}

export function signOut(c: Context) {
  deleteCookie(c, TOKEN_COOKIE, cookieOptions(c))
}

/**
 * Only local console paths are followed after sign-in: /ui, /ui/… or /ui?…, in printable ASCII without backslashes
 * (no open redirect, no CR/LF into the Location header); anything else goes to /ui.
 */
export function safeNext(next: string | undefined): string {
  return next && next.length <= 2000 && /^\/ui(?:[/?][\x21-\x5b\x5d-\x7e]*)?$/.test(next) && !next.startsWith('/ui//') ? next : '/ui'
}
