/** @jsxImportSource hono/jsx */
// The audit console at /ui: server-rendered pages over the API (called in-process, with the viewer's token) and the
// read model. Reading works without JavaScript; the only state-changing forms (sign-in/out, redrive) are POSTs
// checked for origin and CSRF token by the session middleware.
import { Hono, type Context } from 'hono'
import { bodyLimit } from 'hono/body-limit'
import { jsxRenderer } from 'hono/jsx-renderer'
import type { Store } from '../clients/mongo.ts'
import { historyCollection, toHistoryItem } from '../consume/history.ts'
import { PARKED_COLLECTION, type Park } from '../consume/parking.ts'
import { FIND_VALUE_MAX, findKey, stateCollection } from '../consume/state.ts'
import { resolveTable } from '../api/tracked-table.ts'
import type { DlqEntry, RedriveReport } from '../redrive/index.ts'
import type { DiscardReport } from '../redrive/discard.ts'
import { authenticate } from '../api/middleware/auth.ts'
import { callApi, qs, type Problem } from './api-call.ts'
import { ASSET_VERSION, CSS, SCRIPT } from './assets.ts'
import type { ConsoleDeps, ConsoleEnv } from './env.ts'
import { Layout } from './layout.tsx'
import { ProblemBox, statusOf } from './parts.tsx'
import { safeNext, securityHeaders, session, signIn, signOut } from './security.ts'
import { Sampler } from './sampler.ts'
import { AuditPage } from './pages/audit.tsx'
import { DiscardDonePage, DlqPage, PreviewPage, type RedriveFilterForm } from './pages/dlq.tsx'
import { FindPage, type FindHit } from './pages/find.tsx'
import { SignInPage } from './pages/sign-in.tsx'
import { StatusPage } from './pages/status.tsx'
import { TimelinePage, timelineHref, type AsOf, type HistoryItem } from './pages/timeline.tsx'
import { TxPage } from './pages/tx.tsx'

/** A column the Find page may search (`<table>.<column>` in the form: a column name with no `.`). */
const SEARCHABLE_COLUMN = /^[^.]+$/
const FIND_HITS = 50
const PAGE = 25
const TX_ID = /^\d{1,20}$/
const FORM_LIMIT = 16 * 1024

type Ctx = Context<ConsoleEnv>
type Page<T> = { items: T[]; nextCursor: string | null }

const text = (c: Ctx, name: string) => (c.req.query(name) ?? '').trim().slice(0, 1000)
const problem = (status: number, detail: string): Problem => ({ status, detail })

export function createConsole(deps: ConsoleDeps) {
  // The live tracked set: a table tracked while the console runs appears on the next page load.
  const trackedNames = () => deps.tracked().list().map((t) => t.aggregateType)
  /** Per table, the columns its read model can be searched by: every captured column that is not masked. */
  const searchable = () =>
    Object.fromEntries(
      deps.tracked().list().map((t) => {
        const hidden = new Set([...(t.spec.mask ?? []), ...(t.spec.exclude ?? [])])
        return [t.aggregateType, t.columns.filter((col) => !hidden.has(col) && SEARCHABLE_COLUMN.test(col))]
      }),
    )
  const masks = (table: string) => new Set(deps.tracked().get(table)?.spec.mask ?? [])
  const sampler = new Sampler(deps.mongo)
  const store = (): Promise<Store> => deps.mongo()

  const app = new Hono<ConsoleEnv>()
  app.use(securityHeaders())
  app.get('/assets/console.css', (c) => asset(c, CSS, 'text/css; charset=utf-8'))
  app.get('/assets/console.js', (c) => asset(c, SCRIPT, 'text/javascript; charset=utf-8'))
  // Forms are a few fields; the limit applies before the session middleware reads the body for its CSRF check.
  app.use(bodyLimit({ maxSize: FORM_LIMIT, onError: (c) => c.text('refused: the form is too large', 413) }))
  app.use(session(deps.config.http))
  app.use(jsxRenderer(({ children, title }, c) => <Layout title={title} c={c as Ctx}>{children}</Layout>, { docType: true }))
  app.use(async (_c, next) => {
    sampler.ensureStarted()
    await next()
  })

  app.get('/sign-in', (c) => {
    if (deps.config.http.tokens.length === 0) return c.redirect('/ui', 303)
    return c.render(<SignInPage next={safeNext(c.req.query('next'))} csrf={c.get('csrf')} failed={false} />, { title: 'Sign in' })
  })
  app.post('/sign-in', async (c) => {
    const form = await c.req.parseBody()
    const token = typeof form.token === 'string' ? form.token.trim() : ''
    const next = safeNext(typeof form.next === 'string' ? form.next : undefined)
    const principal = authenticate(deps.config.http.tokens, `Bearer ${token}`)
    if (!principal) {
      c.status(401)
      return c.render(<SignInPage next={next} csrf={c.get('csrf')} failed={true} />, { title: 'Sign in' })
    }
    c.get('log').info('console sign-in', { principal: principal.name })
    signIn(c, token)
    return c.redirect(next, 303)
  })
  app.post('/sign-out', (c) => {
    signOut(c)
    return c.redirect('/ui/sign-in', 303)
  })

  app.get('/', async (c) => {
    const tracked = trackedNames()
    return c.render(<FindPage tables={tracked} searchable={searchable()} query={{ table: tracked[0] ?? '', id: '', field: '', value: '' }} hits={null} problem={null} />, {
      title: 'Find',
    })
  })
  app.get('/find', async (c) => {
    const q = { table: text(c, 'table'), id: text(c, 'id'), field: text(c, 'field'), value: text(c, 'value') }
    const tracked = trackedNames()
    const columns = searchable()
    const render = (hits: FindHit[] | null, p: Problem | null) => {
      if (p) c.status(statusOf(p))
      return c.render(<FindPage tables={tracked} searchable={columns} query={q} hits={hits} problem={p} />, { title: 'Find' })
    }
    if (q.id) {
      const found = await resolveTable(deps.tracked(), q.table)
      if (!found) return render(null, problem(400, `table: not a tracked table: ${q.table}`))
      return c.redirect(timelineHref(found.aggregateType, q.id), 303)
    }
    // `<table>.<column>`: the table's name may have dots of its own (a schema), a searchable column has none.
    const dot = q.field.lastIndexOf('.')
    const table = q.field.slice(0, dot)
    const column = q.field.slice(dot + 1)
    if (dot < 0 || !columns[table]?.includes(column)) return render(null, problem(400, `field: not a searchable column: ${q.field}`))
    if (!q.value) return render(null, problem(400, 'value: required'))
    if (q.value.length > FIND_VALUE_MAX) return render(null, problem(400, `value: values longer than ${FIND_VALUE_MAX} characters are not indexed for find`))
    // One indexed equality on the state's find keys (never a filter on `row.<column>`, which FerretDB serves by
    // reading every state). Unsorted so that real MongoDB stops at the limit; the hits are ordered here.
    const docs = await (await store()).collection(stateCollection(table)).find({ find: findKey(column, q.value) }, { limit: FIND_HITS })
    docs.sort((a, b) => (String(a._id) < String(b._id) ? -1 : String(a._id) > String(b._id) ? 1 : 0))
    const hits = docs.map((d) => {
      const row = (d.row ?? {}) as Record<string, unknown>
      return {
        id: String(d._id),
        deleted: d.deleted === true,
        version: Number(d.version),
        occurredAt: String(d.occurredAt ?? ''),
        label: [row.name, row.email, row.status, row.category].filter((x) => typeof x === 'string').join(' · '),
      }
    })
    return render(hits, null)
  })

  app.get('/t/:table/:id', async (c) => {
    const { table, id } = c.req.param()
    const asOfText = text(c, 'asof')
    const cursor = text(c, 'cursor')
    const base = `/history/${encodeURIComponent(table)}/${encodeURIComponent(id)}`
    const [history, at] = await Promise.all([
      callApi<Page<HistoryItem>>(deps, c, 'GET', `${base}${qs({ order: 'desc', limit: PAGE, cursor })}`),
      asOfText ? callApi<AsOf>(deps, c, 'GET', `${base}/at${qs({ ts: asOfText })}`) : Promise.resolve(null),
    ])
    const next = history.ok && history.body.nextCursor ? `${timelineHref(table, id)}${qs({ asof: asOfText, cursor: history.body.nextCursor })}` : null
    const p = history.ok ? null : history.problem
    if (p) c.status(statusOf(p))
    else if (at && !at.ok && at.problem.status === 400) c.status(400)
    return c.render(
      <TimelinePage
        table={table}
        id={id}
        events={history.ok ? history.body.items : []}
        problem={p}
        next={next}
        asOfText={asOfText}
        asOf={at === null ? null : at.ok ? at.body : at.problem}
        masked={masks(table)}
      />,
      { title: `${table} ${id}` },
    )
  })

  app.get('/tx/:tx', async (c) => {
    const txId = c.req.param('tx')
    if (!TX_ID.test(txId)) {
      c.status(400)
      return c.render(<ProblemBox problem={problem(400, 'tx: a transaction id is a number')} />, { title: 'Transaction' })
    }
    const s = await store()
    const perTable = await Promise.all(trackedNames().map((t) => s.collection(historyCollection(t)).find({ txId }, { limit: 500 })))
    const events = perTable
      .flat()
      .map((d) => toHistoryItem(d) as unknown as HistoryItem)
      .sort((a, b) => a.tx.index - b.tx.index)
    return c.render(<TxPage txId={txId} events={events} />, { title: `Transaction ${txId}` })
  })

  app.get('/audit', async (c) => {
    const filter = { actor: text(c, 'actor'), table: text(c, 'table'), type: text(c, 'type'), from: text(c, 'from'), to: text(c, 'to') }
    const cursor = text(c, 'cursor')
    const res = await callApi<Page<HistoryItem>>(deps, c, 'GET', `/history${qs({ ...filter, order: 'desc', limit: PAGE, cursor })}`)
    if (!res.ok) c.status(statusOf(res.problem))
    const next = res.ok && res.body.nextCursor ? `/ui/audit${qs({ ...filter, cursor: res.body.nextCursor })}` : null
    return c.render(
      <AuditPage filter={filter} tables={trackedNames()} items={res.ok ? res.body.items : []} problem={res.ok ? null : res.problem} next={next} />,
      { title: 'Audit search' },
    )
  })

  const redriveFilter = (get: (k: string) => string): RedriveFilterForm => ({ topic: get('topic'), aggregate: get('aggregate'), error: get('error') })
  app.get('/dlq', async (c) => {
    const filter = redriveFilter((k) => text(c, k))
    const cursor = text(c, 'cursor')
    const res = await callApi<Page<DlqEntry>>(deps, c, 'GET', `/dlq${qs({ ...filter, limit: PAGE, cursor })}`)
    // Parks come from the read side directly; only shown to whoever the API lets read the DLQ itself.
    const parks = res.ok ? await (await store()).collection<Park>(PARKED_COLLECTION).find({}, { sort: { at: -1 }, limit: 200 }) : []
    if (!res.ok) c.status(statusOf(res.problem))
    const next = res.ok && res.body.nextCursor ? `/ui/dlq${qs({ ...filter, cursor: res.body.nextCursor })}` : null
    return c.render(<DlqPage filter={filter} items={res.ok ? res.body.items : []} parks={parks} problem={res.ok ? null : res.problem} next={next} csrf={c.get('csrf')} />, {
      title: 'Dead letters',
    })
  })
  app.get('/dlq/preview', async (c) => {
    const filter = redriveFilter((k) => text(c, k))
    const res = await callApi<RedriveReport>(deps, c, 'POST', '/dlq/redrive', { ...nonEmpty(filter), dryRun: true })
    if (!res.ok) c.status(statusOf(res.problem))
    return c.render(<PreviewPage filter={filter} report={res.ok ? res.body : null} problem={res.ok ? null : res.problem} csrf={c.get('csrf')} done={false} />, {
      title: 'Redrive preview',
    })
  })
  app.post('/dlq/redrive', async (c) => {
    const form = await c.req.parseBody()
    const filter = redriveFilter((k) => (typeof form[k] === 'string' ? (form[k] as string).trim() : ''))
    const limit = Number(form.limit)
    const res = await callApi<RedriveReport>(deps, c, 'POST', '/dlq/redrive', {
      ...nonEmpty(filter),
      ...(Number.isInteger(limit) && limit > 0 ? { limit } : {}),
      dryRun: false,
    })
    if (!res.ok) c.status(statusOf(res.problem))
    else c.get('log').info('console redrive', { redriven: res.body.redriven, kept: res.body.kept, principal: c.get('principal')?.name })
    return c.render(<PreviewPage filter={filter} report={res.ok ? res.body : null} problem={res.ok ? null : res.problem} csrf={c.get('csrf')} done={true} />, {
      title: 'Redrive',
    })
  })

  app.post('/dlq/discard', async (c) => {
    const form = await c.req.parseBody()
    const field = (k: string) => (typeof form[k] === 'string' ? (form[k] as string).trim() : '')
    const res = await callApi<DiscardReport>(deps, c, 'POST', '/dlq/discard', {
      topic: field('topic'),
      partition: Number(field('partition')),
      offset: field('offset'),
      reason: field('reason'),
    })
    if (!res.ok) c.status(statusOf(res.problem))
    else c.get('log').info('console discard', { eventId: res.body.discarded.eventId, principal: c.get('principal')?.name })
    return c.render(<DiscardDonePage report={res.ok ? res.body : null} problem={res.ok ? null : res.problem} />, { title: 'Discard' })
  })

  app.get('/status', (c) => c.render(<StatusPage samples={sampler.list()} />, { title: 'Pipeline' }))

  app.get('/*', (c) => {
    c.status(404)
    return c.render(<ProblemBox problem={problem(404, `no console page at ${c.req.path}`)} />, { title: 'Not found' })
  })
  app.onError((error, c) => {
    c.get('log').error('console error', { error })
    c.status(503)
    return c.render(<ProblemBox problem={problem(503, 'a backing service is unavailable or failed; retry later (quote the request id when reporting it)')} />, {
      title: 'Unavailable',
    })
  })
  return app
}

function asset(c: Ctx, body: string, type: string) {
  const fresh = c.req.query('v') === ASSET_VERSION
  return c.body(body, 200, { 'content-type': type, 'cache-control': fresh ? 'public, max-age=31536000, immutable' : 'no-cache' })
}

const nonEmpty = (f: RedriveFilterForm) => Object.fromEntries(Object.entries(f).filter(([, v]) => v !== ''))
