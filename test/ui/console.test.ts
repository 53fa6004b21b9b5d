// The console in a real browser, over the whole pipeline: API writes by two people → capture → relay → Kafka →
// consumer → MongoDB → console pages. Timeline diffs and actors, the as-of view, HTML in values shown as text,
// a poison message in Dead letters with a dry-run redrive preview, sign-in, roles, CSRF and CSP. Every page is
// screenshotted at desktop and phone width (and must not scroll sideways).
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from 'bun:test'
import type { Browser, BrowserContext, Page } from 'playwright-core'
import { createTestEnv, eventually, ROOT, type TestEnv } from '../support/env.ts'
import { migrate } from '../../src/capture/migrate.ts'
import { startApi } from '../../src/api/server.ts'
import { startRelay } from '../../src/relay/index.ts'
import { startConsumer } from '../../src/consume/index.ts'
import { topicFor } from '../../src/topics.ts'
import type { Role } from '../../src/runtime.ts'
import { CSP } from '../../src/ui/security.ts'
import { ARTIFACTS, launchBrowser, screenshots, sha256 } from './support.ts'

const TOKENS = { alice: 'alice-token-1', bob: 'bob-token-2', auditor: 'auditor-token-3', viewer: 'viewer-token-4' }
const EVIL = '<script>window.__pwned = 1</script><b>bold</b>'

setDefaultTimeout(60_000)

let env: TestEnv
let base: string
let browser: Browser
let admin: BrowserContext
let page: Page
const roles: Role[] = []
const problems: string[] = []
let customerId = ''

beforeAll(async () => {
  env = await createTestEnv((c) => {
    c.http.port = 0
    c.http.tokens = [
      { name: 'alice', sha256: sha256(TOKENS.alice), role: 'write' },
      { name: 'bob', sha256: sha256(TOKENS.bob), role: 'write' },
      { name: 'auditor', sha256: sha256(TOKENS.auditor), role: 'admin' },
      { name: 'viewer', sha256: sha256(TOKENS.viewer), role: 'read' },
    ]
    c.capture.tables.customers = { exclude: [], incidental: ['updated_at'], bookkeeping: [], mask: ['phone'] }
  })
  await migrate(env.rt)
  const api = await startApi(env.rt)
  roles.push(api)
  base = api.url.origin
  roles.push(await startRelay(env.rt))
  roles.push(await startConsumer(env.rt))
  browser = await launchBrowser()
  admin = await browser.newContext({ viewport: { width: 1280, height: 900 } })
  page = await admin.newPage()
  // Script errors and CSP violations; failed loads are the 4xx pages some tests ask for on purpose.
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) problems.push(m.text())
  })
  page.on('pageerror', (e) => problems.push(e.message))
  page.on('dialog', (d) => {
    problems.push(`dialog: ${d.message()}`)
    void d.dismiss()
  })
}, 120_000)

afterAll(async () => {
  await browser?.close().catch(() => {})
  for (const role of roles.reverse()) await role.stop().catch(() => {})
  await env?.cleanup()
})

async function apiCall(method: string, path: string, body: unknown, token: string, reason?: string) {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...(reason ? { 'x-reason': reason } : {}) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  })
  return { status: res.status, body: res.status === 204 ? null : ((await res.json()) as any) }
}

test('signing in: the console asks for a token, refuses a wrong one and keeps the right one in an HttpOnly cookie', async () => {
  await page.goto(`${base}/ui/audit`)
  expect(new URL(page.url()).pathname).toBe('/ui/sign-in')
  await screenshots(page, 'sign-in')
  await page.fill('input[name=token]', 'wrong')
  await page.click('button[type=submit]')
  expect(await page.textContent('.problem')).toContain('not valid')
  await page.fill('input[name=token]', TOKENS.auditor)
  await page.click('button[type=submit]')
  expect(new URL(page.url()).pathname).toBe('/ui/audit')
  expect(await page.textContent('.who')).toContain('auditor')
  const cookie = (await admin.cookies()).find((c) => c.name === 'cdc_console_token')
  expect(cookie).toMatchObject({ httpOnly: true, sameSite: 'Strict', path: '/ui' })
  expect(await page.content()).not.toContain(TOKENS.auditor)
})

test('a customer changed through the API shows its timeline with the right diffs, actors and reasons', async () => {
  const created = await apiCall('POST', '/customers', { name: 'Ann', email: 'ann@example.com', address: 'Old Road 1', phone: '555 1234' }, TOKENS.alice, 'signup form')
  expect(created.status).toBe(201)
  customerId = String(created.body.id)
  expect((await apiCall('PATCH', `/customers/${customerId}`, { name: 'Ann Smith', address: 'New Street 2' }, TOKENS.bob, 'married and moved')).status).toBe(200)
  expect((await apiCall('PATCH', `/customers/${customerId}`, { address: EVIL, phone: '555 9999' }, TOKENS.alice, `ticket ${EVIL}`)).status).toBe(200)
  await eventually(async () => {
    const res = await apiCall('GET', `/customers/${customerId}/history`, undefined, TOKENS.viewer)
    return res.body.items?.length >= 4
  }, 30_000)

  await page.goto(`${base}/ui`)
  await screenshots(page, 'find')
  await page.fill('#find-id input[name=id]', customerId)
  await page.click('#find-id button')
  expect(new URL(page.url()).pathname).toBe(`/ui/t/customers/${customerId}`)
  const events = await page.$$eval('article.event', (els) =>
    els.map((e) => [e.getAttribute('data-version'), e.getAttribute('data-type'), e.querySelector('.actor')?.textContent, e.querySelector('.reason')?.textContent]),
  )
  expect(events.slice(-3)).toEqual([
    ['3', 'CustomerAddressChanged', 'bob', 'married and moved'],
    ['2', 'CustomerNameChanged', 'bob', 'married and moved'],
    ['1', 'CustomerCreated', 'alice', 'signup form'],
  ])
  // Newest first: the last write is on top.
  expect(Number(events[0]![0])).toBeGreaterThan(3)
  const row = (version: number, field: string) => page.locator(`article[data-version="${version}"] tr[data-field="${field}"]`)
  expect(await row(2, 'name').getAttribute('class')).toBe('changed')
  expect(await row(2, 'name').locator('td').allTextContents()).toEqual(['name', 'Ann', 'Ann Smith'])
  expect(await row(2, 'email').getAttribute('class')).toBe('same')
  expect(await row(3, 'address').locator('td').allTextContents()).toEqual(['address', 'Old Road 1', 'New Street 2'])
  // Two events of one command share their transaction, and link each other.
  expect(await page.locator('article[data-version="2"] .tx a[href^="#e-"]').textContent()).toBe('CustomerAddressChanged v3')
  // The masked column never shows a value, only that it is masked.
  expect(await row(1, 'phone').textContent()).toContain('masked')
  expect(await page.content()).not.toContain('555 1234')
  await screenshots(page, 'timeline')
  await page.setViewportSize({ width: 1280, height: 900 })
  // The README's picture: an artifact on every run, copied over docs/ only on request (tests leave the tree clean).
  const picture = process.env.CDC_UPDATE_DOCS === '1' ? `${ROOT}docs/console-timeline.png` : `${ARTIFACTS}/console-timeline.png`
  await page.screenshot({ path: picture, clip: { x: 0, y: 0, width: 1280, height: 900 } })
})

test('an order\'s lines show as a structured diff: which line was added, removed or changed, and which field', async () => {
  const product = await apiCall('POST', '/products', { category: 'tools', name: 'Hammer', price: 9.5 }, TOKENS.alice)
  const other = await apiCall('POST', '/products', { category: 'tools', name: 'Saw', price: 20 }, TOKENS.alice)
  const order = await apiCall('POST', '/orders', { customerId: Number(customerId), shippingAddress: 'Dock 1', lines: [{ productId: product.body.id, quantity: 2 }, { productId: product.body.id, quantity: 1 }] }, TOKENS.alice, 'phone order')
  expect(order.status).toBe(201)
  const [kept, changed] = order.body.lines.map((l: { id: number }) => String(l.id))
  // One transaction by hand: one line's quantity changes, one line goes, one comes (one order event), and another
  // customer's phone changes (a second event of the transaction, for tx.size).
  const bystander = await apiCall('POST', '/customers', { name: 'Bo Stander', email: 'bo@example.com', address: 'Dock 2' }, TOKENS.alice)
  const added = await env.rt.db().begin(async (tx) => {
    await tx.query(`update customers set phone = '+1 555 0100' where id = $1`, [bystander.body.id])
    await tx.query(`update order_lines set quantity = 3 where id = $1`, [changed])
    await tx.query(`delete from order_lines where id = $1`, [kept])
    const [row] = await tx.query<{ id: number }>(`insert into order_lines (order_id, product_id, quantity, unit_price) values ($1, $2, 1, 20) returning id`, [order.body.id, other.body.id])
    return String(row!.id)
  })
  // (OrderPlaced shows its lines as added too: wait for the event of the transaction above)
  const lineEvent = `article.event:has(li.item[data-status="added"][data-key="${added}"])`
  await eventually(async () => {
    await page.goto(`${base}/ui/t/orders/${order.body.id}`)
    return (await page.locator(lineEvent).count()) > 0
  }, 30_000, 500)
  const event = page.locator(lineEvent).first()
  const item = (key: string) => event.locator(`li.item[data-key="${key}"]`)
  expect(await item(added).getAttribute('data-status')).toBe('added')
  expect(await item(kept).getAttribute('data-status')).toBe('removed')
  expect(await item(changed).getAttribute('data-status')).toBe('changed')
  // The changed line lists only the field that changed, before and after.
  expect(await item(changed).locator('tr').count()).toBe(1)
  expect(await item(changed).locator('tr[data-path="quantity"] td').allTextContents()).toEqual(['quantity', '1', '3'])
  expect(await item(added).locator('tr[data-path="quantity"] td').allTextContents()).toEqual(['quantity', '1'])
  expect(await item(kept).locator('tr[data-path="quantity"] td').allTextContents()).toEqual(['quantity', '2'])
  // Structure, not JSON text.
  expect(await event.locator('code').allTextContents()).not.toContainEqual(expect.stringContaining('[{'))
  await screenshots(page, 'timeline-order-lines')
  // The as-of view shows the document's lines as items too (the two lines left after that transaction).
  await event.locator('a.asof-link').click()
  expect((await page.locator('#asof li.item').evaluateAll((els) => els.map((e) => e.getAttribute('data-key')))).sort()).toEqual([added, changed].sort())
  await page.goBack()
  // tx.size: the event says where it stands in its transaction, and the transaction page that it is complete.
  expect(await event.locator('.tx span').first().textContent()).toMatch(/\(event \d+ of [2-9]\)/)
  await event.locator('.tx a[href^="/ui/tx/"]').click()
  await eventually(async () => {
    const text = (await page.textContent('#tx-size')) ?? ''
    const m = /^(\d+) of the transaction's (\d+) events/.exec(text)
    if (!m || m[1] !== m[2]) await page.reload()
    return m?.[1] === m?.[2]
  }, 20_000, 500)
})

test('long values wrap between words on a phone, and /ui/ is the console like /ui', async () => {
  const words = 'Apartment twelve, Building Seven, Long Industrial Estate Road, Northern District, attention of the night porter'
  const created = await apiCall('POST', '/customers', { name: 'Wanda Long', email: 'wanda@example.com', address: 'Short 1' }, TOKENS.alice)
  const wanda = String(created.body.id)
  expect((await apiCall('PATCH', `/customers/${wanda}`, { address: words }, TOKENS.alice, `${words} again`)).status).toBe(200)
  await page.setViewportSize({ width: 360, height: 800 })
  try {
    await eventually(async () => {
      await page.goto(`${base}/ui/t/customers/${wanda}`)
      return (await page.locator('article.event .reason').first().textContent({ timeout: 1000 }).catch(() => null)) === `${words} again`
    }, 30_000, 500)
    const latest = page.locator('article.event').first()
    const split = (selector: string) =>
      latest.locator(selector).first().evaluate((el) => {
        // A word that fits its box but is drawn on two lines was broken inside, not at a space.
        const out: string[] = []
        const { document, NodeFilter } = globalThis as any
        const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT)
        for (let node = walker.nextNode(); node; node = walker.nextNode()) {
          for (const m of (node.textContent ?? '').matchAll(/\S+/g)) {
            const range = document.createRange()
            range.setStart(node, m.index!)
            range.setEnd(node, m.index! + m[0].length)
            const rects = [...range.getClientRects()].filter((r: any) => r.width > 0)
            if (new Set(rects.map((r: any) => Math.round(r.top))).size > 1 && range.getBoundingClientRect().width < (el as any).clientWidth) out.push(m[0])
          }
        }
        return out
      })
    expect(await latest.locator('.reason').evaluate((el) => el.getClientRects().length)).toBeGreaterThan(1)
    expect(await split('.meta')).toEqual([])
    expect(await split('tr[data-field="address"] td:nth-child(3)')).toEqual([])
    await screenshots(page, 'timeline-long-values')
  } finally {
    await page.setViewportSize({ width: 1280, height: 900 })
  }
  for (const path of ['/ui/', `/ui/t/customers/${wanda}/`]) {
    const res = await page.goto(`${base}${path}`)
    expect(res?.status()).toBe(200)
    expect(new URL(page.url()).pathname).toBe(path.replace(/\/$/, ''))
  }
  expect(await page.title()).toContain(wanda)
})

test('values containing HTML or script render as text, and nothing runs', async () => {
  await page.goto(`${base}/ui/t/customers/${customerId}`)
  const latest = page.locator('article.event').first()
  expect(await latest.locator('tr[data-field="address"] td').nth(2).textContent()).toBe(EVIL)
  expect(await latest.locator('.reason').textContent()).toBe(`ticket ${EVIL}`)
  expect(await page.evaluate('window.__pwned')).toBeUndefined()
  expect(await page.locator('main script').count()).toBe(0)
  expect(await latest.locator('tr[data-field="address"] b').count()).toBe(0)
})

test('the as-of view shows the row as it was at an earlier event', async () => {
  await page.goto(`${base}/ui/t/customers/${customerId}`)
  await page.click('article[data-version="1"] a.asof-link')
  expect(await page.textContent('#asof h2')).toContain('version 1')
  expect(await page.locator('#asof tr[data-field="name"] td').nth(1).textContent()).toBe('Ann')
  expect(await page.locator('#asof tr[data-field="address"] td').nth(1).textContent()).toBe('Old Road 1')
  await screenshots(page, 'timeline-asof')
  // A typed instant before the customer existed, and one that is not a time at all: clear answers, not errors.
  await page.fill('input[name=asof]', '2001-01-01T00:00:00Z')
  await page.click('form.card button[type=submit]')
  expect(await page.textContent('.problem')).toContain('did not exist')
  const bad = await page.goto(`${base}/ui/t/customers/${customerId}?asof=yesterday`)
  expect(bad?.status()).toBe(400)
  expect(await page.textContent('.problem')).toContain('valid')
})

test('find by email and audit search by actor lead to the customer', async () => {
  await page.goto(`${base}/ui`)
  await page.selectOption('#find-value select[name=field]', 'customers.email')
  await page.fill('#find-value input[name=value]', 'ann@example.com')
  await page.click('#find-value button')
  await eventually(async () => (await page.locator('#hits a').count()) > 0 || (await page.reload(), false), 20_000, 500)
  expect(await page.locator('#hits a').first().getAttribute('href')).toBe(`/ui/t/customers/${customerId}`)
  await screenshots(page, 'find-results')

  await page.goto(`${base}/ui/audit?actor=bob&table=customers`)
  const rows = await page.$$eval('#results tbody tr', (trs) => trs.map((tr) => tr.querySelector('td[data-label=event]')?.textContent))
  expect(rows).toEqual(['CustomerAddressChanged v3', 'CustomerNameChanged v2'])
  await screenshots(page, 'audit')
  const unknown = await page.goto(`${base}/ui/audit?table=secrets`)
  expect(unknown?.status()).toBe(400)
})

test('a poison message appears in Dead letters and a dry-run redrive previews it without changing anything', async () => {
  const topic = topicFor(env.config, 'customers', 'CustomerCreated')
  const producer = await env.rt.kafka().producer()
  try {
    await producer.send([{ topic, key: 'poison-ui', value: '{"this is": not json <script>' }])
  } finally {
    await producer.disconnect()
  }
  await eventually(async () => {
    await page.goto(`${base}/ui/dlq`)
    return (await page.locator('article.dlq[data-key="poison-ui"]').count()) > 0
  }, 40_000, 1000)
  expect(await page.locator('article.dlq[data-key="poison-ui"] .error').textContent()).not.toBe('')
  await screenshots(page, 'dlq')
  await page.fill('input[name=aggregate]', 'poison-ui')
  await page.click('text=Preview redrive')
  expect(await page.textContent('#summary')).toContain('1 message(s) would be redriven')
  expect(await page.textContent('#preview')).toContain('would-redrive')
  await screenshots(page, 'dlq-preview')
  // Still pending: the preview changed nothing.
  await page.goto(`${base}/ui/dlq?aggregate=poison-ui`)
  expect(await page.locator('article.dlq').count()).toBe(1)
})

test('state-changing forms need the session CSRF token and our origin', async () => {
  const cookies = (await admin.cookies()).map((c) => `${c.name}=${c.value}`).join('; ')
  const post = (headers: Record<string, string>, body: string) =>
    fetch(`${base}/ui/dlq/redrive`, { method: 'POST', redirect: 'manual', headers: { cookie: cookies, 'content-type': 'application/x-www-form-urlencoded', ...headers }, body })
  const csrf = await page.goto(`${base}/ui/dlq/preview?aggregate=poison-ui`).then(() => page.inputValue('form[action="/ui/dlq/redrive"] input[name=_csrf]'))
  expect((await post({ origin: base }, 'aggregate=poison-ui')).status).toBe(403)
  expect((await post({ origin: base }, 'aggregate=poison-ui&_csrf=forged')).status).toBe(403)
  expect((await post({ origin: 'https://evil.example' }, `aggregate=poison-ui&_csrf=${csrf}`)).status).toBe(403)
  expect((await post({}, `aggregate=poison-ui&_csrf=${csrf}`)).status).toBe(403)
  // Nothing was redriven by the refused attempts.
  await page.goto(`${base}/ui/dlq?aggregate=poison-ui`)
  expect(await page.locator('article.dlq').count()).toBe(1)
})

test('a read-only viewer reads timelines but not the dead letters', async () => {
  const viewer = await browser.newContext()
  try {
    const p = await viewer.newPage()
    await p.goto(`${base}/ui/sign-in`)
    await p.fill('input[name=token]', TOKENS.viewer)
    await p.click('button[type=submit]')
    const timeline = await p.goto(`${base}/ui/t/customers/${customerId}`)
    expect(timeline?.status()).toBe(200)
    const dlq = await p.goto(`${base}/ui/dlq`)
    expect(dlq?.status()).toBe(403)
    expect(await p.textContent('.problem')).toContain('admin')
    expect((await p.goto(`${base}/ui/dlq/preview?aggregate=poison-ui`))?.status()).toBe(403)
  } finally {
    await viewer.close()
  }
})

test('pipeline status draws the /metrics figures as charts', async () => {
  await page.goto(`${base}/ui/status`)
  await eventually(async () => {
    await page.reload()
    return (await page.textContent('[data-series=published] .now')) !== '—'
  }, 20_000, 1000)
  expect(await page.locator('#metrics svg').count()).toBe(7)
  expect(await page.textContent('[data-series=relayBacklog] .now')).not.toBe('—')
  await screenshots(page, 'status')
})

test('every page carries the strict CSP, and the browser reported no errors or dialogs', async () => {
  const res = await fetch(`${base}/ui/status`, { headers: { cookie: (await admin.cookies()).map((c) => `${c.name}=${c.value}`).join('; ') } })
  expect(res.headers.get('content-security-policy')).toBe(CSP)
  expect(res.headers.get('x-frame-options')).toBe('DENY')
  expect(problems).toEqual([])
  expect(await Bun.file(`${ARTIFACTS}/timeline-phone.png`).exists()).toBe(true)
  expect((await Bun.file(`${ROOT}docs/console-timeline.png`).arrayBuffer()).byteLength).toBeLessThan(300_000)
  expect(await Bun.file(`${ARTIFACTS}/console-timeline.png`).exists() || process.env.CDC_UPDATE_DOCS === '1').toBe(true)
})
