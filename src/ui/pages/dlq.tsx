/** @jsxImportSource hono/jsx */
// Dead letters: the DLQ entries with their errors and trail (where they came from, when, how often redriven), the
// parked aggregates, and redrive in two steps: a dry-run preview first, then the confirmed redrive (admin only).
import type { Park } from '../../consume/parking.ts'
import type { DlqEntry, RedriveReport } from '../../redrive/index.ts'
import type { Problem } from '../api-call.ts'
import { CSRF_FIELD } from '../security.ts'
import { Pager, ProblemBox, Time } from '../parts.tsx'

/** What the page shows of a park (the consumer's record in `cdc_parked`). */
export type ParkView = Pick<Park, 'topic' | 'key' | 'head' | 'error' | 'at' | 'release'>

export interface RedriveFilterForm {
  topic: string
  aggregate: string
  error: string
}

export function DlqPage(p: {
  filter: RedriveFilterForm
  items: DlqEntry[]
  parks: ParkView[]
  problem: Problem | null
  next: string | null
}) {
  const f = p.filter
  return (
    <>
      <h1>Dead letters</h1>
      <form class="card inline" method="get" action="/ui/dlq/preview">
        <label>
          Topic
          <input name="topic" value={f.topic} placeholder="cdc.customers" />
        </label>
        <label>
          Aggregate (key)
          <input name="aggregate" value={f.aggregate} />
        </label>
        <label>
          Error contains
          <input name="error" value={f.error} />
        </label>
        <button type="submit">Preview redrive (dry run)</button>
      </form>
      {p.problem ? <ProblemBox problem={p.problem} /> : null}
      <h2>Messages ({p.items.length}{p.next ? '+' : ''})</h2>
      {!p.problem && p.items.length === 0 ? <p class="muted">The DLQ is empty.</p> : null}
      {p.items.map((e) => (
        <article class="event op-d dlq" data-key={e.key ?? ''}>
          <header>
            <span class="type">{e.eventType ?? 'unreadable message'}</span>
            <span class="badge">key {e.key ?? '—'}</span>
            {e.parked ? <span class="badge">parked behind an earlier failure</span> : <span class="badge bad">failed</span>}
            <Time iso={e.at} />
          </header>
          <p class="error">
            <b>error</b> <code>{e.error || '(no error recorded)'}</code>
          </p>
          <div class="meta">
            <span>
              from <code>{`${e.origin.topic} [${e.origin.partition}] @${e.origin.offset}`}</code>
            </span>
            <span>
              group <code>{e.origin.group}</code>
            </span>
            <span>
              at <code>{`${e.topic} [${e.partition}] @${e.offset}`}</code>
            </span>
            <span>redriven {e.redriveCount}×</span>
            {e.eventId ? (
              <span>
                event <code>{e.eventId}</code>
              </span>
            ) : null}
          </div>
        </article>
      ))}
      <Pager next={p.next} label="More" />
      <h2>Parked aggregates ({p.parks.length})</h2>
      {p.parks.length === 0 ? <p class="muted">No aggregate is parked.</p> : null}
      {p.parks.length ? (
        <table class="cards" id="parks">
          <thead>
            <tr>
              <th>topic / key</th>
              <th>waiting behind</th>
              <th>error</th>
              <th>since</th>
            </tr>
          </thead>
          <tbody>
            {p.parks.map((park) => (
              <tr>
                <td data-label="topic / key">
                  <code>{park.topic}</code> {park.key}
                </td>
                <td data-label="waiting behind">
                  <code>{park.head}</code>
                  {park.release.length ? <small> ({park.release.length} released)</small> : null}
                </td>
                <td data-label="error">{park.error}</td>
                <td data-label="since">
                  <Time iso={park.at} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
    </>
  )
}

export function PreviewPage(p: { filter: RedriveFilterForm; report: RedriveReport | null; problem: Problem | null; csrf: string; done: boolean }) {
  const f = p.filter
  const report = p.report
  const pending = report?.items.filter((i) => i.action === 'would-redrive').length ?? 0
  return (
    <>
      <h1>{p.done ? 'Redrive done' : 'Redrive preview (dry run)'}</h1>
      <p class="muted">
        Filter: topic <code>{f.topic || 'any'}</code>, aggregate <code>{f.aggregate || 'any'}</code>, error containing{' '}
        <code>{f.error || 'anything'}</code>. <a href="/ui/dlq">Back to dead letters</a>
      </p>
      {p.problem ? <ProblemBox problem={p.problem} /> : null}
      {report ? (
        <>
          <p class={p.done ? 'notice' : 'card'} id="summary">
            {p.done
              ? `${report.redriven} message(s) republished to their original topics; ${report.kept} kept (too many redrives).`
              : `${pending} message(s) would be redriven; ${report.kept} would be kept (too many redrives). Nothing has been changed yet.`}
          </p>
          <table class="cards" id="preview">
            <thead>
              <tr>
                <th>key</th>
                <th>DLQ position</th>
                <th>event</th>
                <th>action</th>
              </tr>
            </thead>
            <tbody>
              {report.items.map((i) => (
                <tr>
                  <td data-label="key">{i.key ?? '—'}</td>
                  <td data-label="DLQ position">
                    <code>{`${i.topic} [${i.partition}] @${i.offset}`}</code>
                  </td>
                  <td data-label="event">
                    <code>{i.eventId ?? '—'}</code>
                    {i.parked ? <small> parked</small> : null}
                  </td>
                  <td data-label="action">{i.action}</td>
                </tr>
              ))}
            </tbody>
          </table>
          {!p.done && pending > 0 ? (
            <form method="post" action="/ui/dlq/redrive" data-confirm={`Redrive ${pending} message(s)?`}>
              <input type="hidden" name={CSRF_FIELD} value={p.csrf} />
              <input type="hidden" name="topic" value={f.topic} />
              <input type="hidden" name="aggregate" value={f.aggregate} />
              <input type="hidden" name="error" value={f.error} />
              <input type="hidden" name="limit" value={String(pending)} />
              <button type="submit" class="danger">
                Redrive these {pending} message(s)
              </button>
            </form>
          ) : null}
        </>
      ) : null}
    </>
  )
}
