// The console's HTTP contract without a browser (the app in-process): open like the API when no tokens are
// configured, sign-in redirects when they are, CSRF and origin checks on POST, strict headers, and bad input as a 4xx
// HTML page (never a 500 or JSON leaking into the console). Mounting it does not open the API.
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { createApiEnv, type ApiEnv } from '../api/support.ts'
import { CSP, SESSION_COOKIE } from '../../src/ui/security.ts'
import { sha256 } from './support.ts'

let open: ApiEnv
let locked: ApiEnv
const redrives: boolean[] = []
beforeAll(async () => {
  // console.test is the name these tests reach the console by: on the Host allow-list like a deployment's own name.
  open = await createApiEnv((c) => {
    c.http.allowedHosts = ['console.test']
  }, {
    dlq: {
      list: async () => ({ items: [], nextCursor: null }),
      redrive: async (f) => {
        redrives.push(f.dryRun === true)
        const item = { topic: 'cdc.customers.dlq', partition: 0, offset: '0', key: 'a', eventId: null, redriveCount: 0, parked: false }
        return { redriven: f.dryRun ? 0 : 1, kept: 0, dryRun: f.dryRun === true, items: [{ ...item, action: f.dryRun ? 'would-redrive' : 'redriven' }] }
      },
    },
  })
  locked = await createApiEnv((c) => {
    c.http.allowedHosts = ['console.test']
    c.http.tokens = [{ name: 'viewer', sha256: sha256('viewer-token'), role: 'read' }]
  })
})
afterAll(async () => {
  await open?.cleanup()
  await locked?.cleanup()
})

const get = (env: ApiEnv, path: string, headers: Record<string, string> = {}) => env.app.request(`http://console.test${path}`, { headers })

async function session(env: ApiEnv) {
  const res = await get(env, '/ui/dlq/preview')
  const sid = /cdc_console_sid=([^;]+)/.exec(res.headers.get('set-cookie') ?? '')![1]!
  const csrf = /name="_csrf" value="([^"]+)"/.exec(await res.text())?.[1] ?? ''
  return { cookie: `${SESSION_COOKIE}=${sid}`, csrf }
}

test('open console: pages render with a strict CSP and a HttpOnly, SameSite=Strict session cookie', async () => {
  const res = await get(open, '/ui')
  expect(res.status).toBe(200)
  expect(res.headers.get('content-type')).toContain('text/html')
  expect(res.headers.get('content-security-policy')).toBe(CSP)
  expect(res.headers.get('set-cookie')).toMatch(/HttpOnly/)
  expect(res.headers.get('set-cookie')).toMatch(/SameSite=Strict/)
  expect(await res.text()).toStartWith('<!DOCTYPE html>')
  expect((await get(open, '/ui/sign-in')).status).toBe(303)
  const css = await get(open, '/ui/assets/console.css')
  expect(css.headers.get('content-type')).toContain('text/css')
})

test('POST needs the session CSRF token and a same-origin Origin; with both the redrive goes through', async () => {
  const { cookie, csrf } = await session(open)
  expect(csrf).not.toBe('')
  const post = (headers: Record<string, string>, body: string) =>
    open.app.request('http://console.test/ui/dlq/redrive', {
      method: 'POST',
      headers: { cookie, host: 'console.test', 'content-type': 'application/x-www-form-urlencoded', ...headers },
      body,
    })
  expect((await post({ origin: 'http://console.test' }, 'aggregate=a')).status).toBe(403)
  expect((await post({ origin: 'http://evil.test' }, `aggregate=a&_csrf=${csrf}`)).status).toBe(403)
  expect((await post({ origin: 'http://console.test' }, `aggregate=a&_csrf=${csrf}x`)).status).toBe(403)
  // Another session's token is no good either.
  const other = await session(open)
  expect((await post({ origin: 'http://console.test' }, `aggregate=a&_csrf=${other.csrf}`)).status).toBe(403)
  expect(redrives).toEqual([true, true])
  const ok = await post({ origin: 'http://console.test' }, `aggregate=a&_csrf=${encodeURIComponent(csrf)}`)
  expect(ok.status).toBe(200)
  expect(await ok.text()).toContain('Redrive done')
  expect(redrives).toEqual([true, true, false])
})

test('bad input gets a 4xx page, not an error', async () => {
  expect((await get(open, '/ui/t/secrets/1')).status).toBe(404)
  expect((await get(open, '/ui/find?field=customers.password&value=x')).status).toBe(400)
  expect((await get(open, '/ui/find?table=secrets&id=1')).status).toBe(400)
  expect((await get(open, '/ui/tx/1;drop')).status).toBe(400)
  expect((await get(open, '/ui/audit?from=not-a-time')).status).toBe(400)
  expect((await get(open, '/ui/t/customers/1?asof=nope')).status).toBe(400)
  const missing = await get(open, '/ui/no-such-page')
  expect(missing.status).toBe(404)
  expect(missing.headers.get('content-type')).toContain('text/html')
})

test('with tokens: pages redirect to sign-in, a wrong token is refused, and the API stays closed', async () => {
  const res = await get(locked, '/ui/audit?actor=x')
  expect(res.status).toBe(303)
  expect(res.headers.get('location')).toBe(`/ui/sign-in?next=${encodeURIComponent('/ui/audit?actor=x')}`)
  expect((await get(locked, '/ui/t/customers/1', { cookie: 'cdc_console_token=forged' })).status).toBe(303)
  expect((await get(locked, '/ui/t/customers/1', { cookie: 'cdc_console_token=viewer-token' })).status).toBe(200)
  expect((await locked.call('GET', '/customers')).status).toBe(401)
  // Only console paths are followed after sign-in.
  const page = await (await get(locked, '/ui/sign-in?next=//evil.test/x')).text()
  expect(page).toContain('name="next" value="/ui"')
})

test('DNS rebinding: a page on a name not on the allow-list can neither read, write nor redrive', async () => {
  // The attacker's name now resolves to us: the browser sends its own name as Host, and as Origin on POSTs.
  const { cookie, csrf } = await session(open)
  const rebound = (path: string, init: RequestInit = {}) => open.app.request(`http://rebind.attacker.test:8080${path}`, init)
  const before = [...redrives]
  const countsBefore = await open.counts()
  expect((await rebound('/ui')).status).toBe(421)
  expect((await rebound('/customers')).status).toBe(421)
  expect((await rebound('/healthz')).status).toBe(421)
  const write = await rebound('/customers', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'R', email: 'r@example.com' }) })
  expect(write.status).toBe(421)
  expect(write.headers.get('content-type')).toBe('application/problem+json')
  const redrive = await rebound('/ui/dlq/redrive', {
    method: 'POST',
    headers: { cookie, origin: 'http://rebind.attacker.test:8080', 'content-type': 'application/x-www-form-urlencoded' },
    body: `aggregate=a&_csrf=${encodeURIComponent(csrf)}`,
  })
  expect(redrive.status).toBe(421)
  // The old check compared Origin with the request's own Host: both the attacker's name, so it passed.
  const sameHost = await open.app.request('http://console.test/ui/dlq/redrive', {
    method: 'POST',
    headers: { cookie, host: 'console.test', origin: 'http://rebind.attacker.test', 'content-type': 'application/x-www-form-urlencoded' },
    body: `aggregate=a&_csrf=${encodeURIComponent(csrf)}`,
  })
  expect(sameHost.status).toBe(403)
  // A different port of an allowed name is another origin: refused too.
  const otherPort = await open.app.request('http://console.test/ui/dlq/redrive', {
    method: 'POST',
    headers: { cookie, host: 'console.test', origin: 'http://console.test:3000', 'content-type': 'application/x-www-form-urlencoded' },
    body: `aggregate=a&_csrf=${encodeURIComponent(csrf)}`,
  })
  expect(otherPort.status).toBe(403)
  expect(redrives).toEqual(before)
  expect(await open.counts()).toEqual(countsBefore)
  // Loopback names and IP literals are always served (a rebinding attack needs a DNS name).
  for (const base of ['http://localhost:8080', 'http://127.0.0.1:8080', 'http://[::1]:8080', 'http://cdc.localhost']) {
    expect((await open.app.request(`${base}/healthz`)).status).toBe(200)
  }
})

test('sign-in: a next with CR/LF or off the console is a safe redirect to /ui, never a broken Location', async () => {
  const first = await get(locked, '/ui/sign-in')
  const sid = /cdc_console_sid=([^;]+)/.exec(first.headers.get('set-cookie') ?? '')![1]!
  const csrf = /name="_csrf" value="([^"]+)"/.exec(await first.text())![1]!
  const signIn = (next: string, token = 'viewer-token') =>
    locked.app.request('http://console.test/ui/sign-in', {
      method: 'POST',
      headers: { cookie: `${SESSION_COOKIE}=${sid}`, host: 'console.test', origin: 'http://console.test', 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ _csrf: csrf, token, next }).toString(),
    })
  const hostile = ['/ui/\r\nSet-Cookie: cdc_console_token=evil', '/ui\r\n', '/ui/x\nLocation: //evil.test', '//evil.test/ui', 'https://evil.test/ui', '/ui\\@evil.test', '/ui/\u00e9', '/uix', 'javascript:alert(1)', '/ui//evil.test']
  for (const next of hostile) {
    const res = await signIn(next)
    expect([next, res.status, res.headers.get('location')]).toEqual([next, 303, '/ui'])
  }
  const good = await signIn('/ui/audit?actor=x')
  expect([good.status, good.headers.get('location')]).toEqual([303, '/ui/audit?actor=x'])
  // A refused sign-in sets no token cookie, whatever next says.
  const refused = await signIn('/ui/\r\nX: y', 'wrong-token')
  expect(refused.status).toBe(401)
  expect(refused.headers.get('set-cookie') ?? '').not.toContain('cdc_console_token=')
  const page = await (await get(locked, `/ui/sign-in?next=${encodeURIComponent('/ui/\r\nX: y')}`)).text()
  expect(page).toContain('name="next" value="/ui"')
})
